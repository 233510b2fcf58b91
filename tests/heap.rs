//! The process's allocator switch: blocks made before and after `favour_throughput` are used,
//! grown, shrunk and freed (on any thread) by the allocator that made them.

use snapwarden::heap::{favour_throughput, mimalloc_owns, Heap};

/// The binary's allocator.
#[global_allocator]
static HEAP: Heap = Heap;

/// Over-aligned blocks, to check that alignment survives each allocator's realloc.
#[repr(align(4096))]
#[derive(Clone)]
struct Page([u8; 4096]);

/// One test: the switch is process-wide, so the order below is the only one in this binary.
#[test]
fn blocks_made_before_and_after_the_switch_stay_with_their_allocator() {
    let mut before: Vec<Vec<u64>> = (0..64).map(|i| vec![i; 1 + i as usize]).collect();
    let mut before_pages = vec![Page([1; 4096])];
    let names: Vec<String> = (0..1000).map(|i| format!("hourly.{i:05}")).collect();
    assert!(before.iter().all(|v| !mimalloc_owns(v.as_ptr().cast())));
    assert!(!mimalloc_owns(names[0].as_ptr()));

    favour_throughput();
    let mut after: Vec<Vec<u64>> = (0..64).map(|i| vec![i * 3; 1 + i as usize]).collect();
    let mut after_pages = vec![Page([2; 4096])];
    assert!(after.iter().all(|v| mimalloc_owns(v.as_ptr().cast())));
    assert!(mimalloc_owns(after_pages.as_ptr().cast()));

    // Grown far past their first blocks, then shrunk: each stays with its allocator.
    for (i, v) in before.iter_mut().chain(after.iter_mut()).enumerate() {
        v.extend(std::iter::repeat_n(i as u64, 100_000));
    }
    assert!(before.iter().all(|v| !mimalloc_owns(v.as_ptr().cast())));
    assert!(after.iter().all(|v| mimalloc_owns(v.as_ptr().cast())));
    for (i, v) in before.iter().enumerate() {
        assert!(
            v[..=i].iter().all(|&x| x == i as u64),
            "kept through growth"
        );
        assert!(v[i + 1..].iter().all(|&x| x == i as u64));
    }
    for (i, v) in after.iter().enumerate() {
        assert!(
            v[..=i].iter().all(|&x| x == 3 * i as u64),
            "kept through growth"
        );
        assert!(v[i + 1..].iter().all(|&x| x == (64 + i) as u64));
    }
    for v in before.iter_mut().chain(after.iter_mut()) {
        v.truncate(3);
        v.shrink_to_fit();
    }
    assert_eq!(before[5], vec![5, 5, 5]);
    assert_eq!(after[5], vec![15, 15, 15]);

    // Alignment of 4096 through growth, in both allocators.
    before_pages.extend(std::iter::repeat_n(Page([3; 4096]), 40));
    after_pages.extend(std::iter::repeat_n(Page([4; 4096]), 40));
    for pages in [&before_pages, &after_pages] {
        assert_eq!(pages.as_ptr() as usize % 4096, 0);
        assert_eq!(pages.len(), 41);
    }
    assert_eq!((before_pages[0].0[4095], before_pages[40].0[0]), (1, 3));
    assert_eq!((after_pages[0].0[4095], after_pages[40].0[0]), (2, 4));

    // Blocks of both allocators freed on another thread, and new ones made there.
    let made_there = std::thread::spawn(move || {
        let n = names.iter().filter(|s| s.starts_with("hourly.")).count();
        drop((names, before, after, before_pages, after_pages));
        (n, (0..1000).map(|i| i.to_string()).collect::<Vec<_>>())
    })
    .join()
    .expect("the thread ends");
    assert_eq!(made_there.0, 1000);
    assert!(mimalloc_owns(made_there.1[999].as_ptr()));
    assert_eq!(made_there.1[999], "999");
}
