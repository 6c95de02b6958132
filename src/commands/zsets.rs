//! The zsets family (Redis 7.0's t_zset.c). To be filled in.

use super::table::Table;

pub fn register(_t: &mut Table) {}
