//! Hash maps and sets for the hot paths of a pass and of the simulator: foldhash, seeded once
//! per process, instead of the standard library's SipHash (hashing volume and snapshot names
//! took a tenth of `simulate` at 10,000 volumes). Their keys are names from the policy and from
//! ONTAP; nothing reads their iteration order.

/// A `HashMap` with foldhash (make one with `default()`).
pub type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A `HashSet` with foldhash (make one with `default()`).
pub type HashSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;
