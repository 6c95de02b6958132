//! The lists family (Redis 7.0's t_list.c). To be filled in.

use super::table::Table;

pub fn register(_t: &mut Table) {}
