//! The vocabulary every other module speaks: the closed vocabularies (memory types, archive
//! reasons, change operations, job statuses and states, trigger types, phases, review statuses,
//! event kinds), the memory records, the options with their one field table, the plan's records,
//! the typed job result and the subject prefix. It imports nothing else of the crate; store rows
//! convert into it at the store's edge, the API's schemas derive from it, the bus carries it.

pub mod embedding;
pub mod figures;
pub mod integral;
pub mod memory;
pub mod options;
pub mod plan;
pub mod prefix;
pub mod result;
pub mod snapshot;
pub mod vocabulary;

pub use embedding::Embedding;
pub use memory::{Memory, MemoryCounts, NEW_MEMORY_VERSION, NewMemory, StoredMemory};
pub use options::{ClusteringOptions, ConsolidationOptions, Mode, Options, OptionsError, ValueGuard};
pub use plan::*;
pub use prefix::Prefix;
pub use result::*;
pub use snapshot::{PlaybookEntrySnapshot, ProjectSnapshot, Scope};
pub use vocabulary::*;
