//! The ONTAP simulator: a world of clusters whose scheduled snapshots happen by themselves.
