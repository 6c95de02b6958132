//! The lists family (Redis 7.0's t_list.c). To be filled in.

use super::table::Table;

pub fn register(_t: &mut Table) {}

/// Moves the head/tail of the list at argument `src_pos` to the list at
/// `dst_pos` (LMOVE's core); false when the source is empty (nothing written).
pub async fn lmove_tx(_tx: &mut super::table::Tx<'_>, _src_pos: usize, _dst_pos: usize, _from_left: bool, _to_left: bool, _args: &crate::protocol::Args<'_>, _out: &mut crate::protocol::Reply) -> Result<bool, super::table::HopLost> {
    Ok(false)
}
