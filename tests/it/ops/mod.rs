//! The commands a host runs besides fetch: `tako check`, `tako status` and `tako gc`.

mod check;
mod gc;
mod status;
