//! Use cases over the repositories of the other modules: each takes typed inputs, runs its
//! transaction (or joins the caller's) and returns a typed error. The HTTP layer and the
//! command line call these, never SQL of their own.

pub mod bootstrap;
pub mod users;
