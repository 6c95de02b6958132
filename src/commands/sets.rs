//! The sets family (Redis 7.0's t_set.c). To be filled in.

use super::table::Table;

pub fn register(_t: &mut Table) {}
