//! Provisional domain enums; replaced by the engine module's own model.
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! string_enum {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }
        impl $name {
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];
            pub fn as_str(&self) -> &'static str { match self { $($name::$variant => $text),+ } }
        }
        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s { $($text => Ok($name::$variant),)+ other => Err(format!("unknown {}: {other:?}", stringify!($name))) }
            }
        }
    };
}

string_enum!(MemoryType { ErrorFix => "error_fix", Discovery => "discovery", Decision => "decision", Learning => "learning", Warning => "warning", CodebaseKnowledge => "codebase_knowledge", Consolidated => "consolidated", Synthesis => "synthesis" });
string_enum!(ArchiveReason { Staleness => "staleness", LowValue => "low_value", Manual => "manual" });
string_enum!(ChangeOperation { Merge => "merge", Archive => "archive", Promote => "promote", Summarize => "summarize", Rollback => "rollback" });
