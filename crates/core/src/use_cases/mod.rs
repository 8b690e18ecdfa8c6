//! The use cases, one module each. They own their ports the same way (generic fields, given at
//! construction) and return errors whose variants say which step failed.
//!
//! - [`job`]: one job: acknowledge, then start or continue its build, then answer.
//! - [`sweep`]: poll for jobs and hand each to [`job`], as far as the trigger asks and time allows.
//! - [`completion`]: a build execution ended: report its result at once and release what the flow
//!   could not.
//! - [`keeper`]: on a schedule, terminate what leaked and stop builds nobody waits for.
//! - [`pools`]: in the keeper's run, keep every warm pool at its size and recycle what must go.

pub mod completion;
pub mod deadline;
pub mod job;
pub mod keeper;
pub mod pools;
pub mod sweep;
