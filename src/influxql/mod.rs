//! The InfluxQL subset the query path needs, parsed with nom into a syntax tree (`lexer`, `ast`,
//! `parser`), written back for replicas (`render`), the indexes a statement reads (`index`),
//! the InfluxDB answer shapes (`result`, `time`) and the merges (`merge`). It must never return
//! a merged answer it cannot prove correct: what it cannot merge exactly it refuses with the
//! reason.

pub mod ast;
pub mod index;
pub mod lexer;
pub mod merge;
pub mod parser;
pub mod render;
pub mod result;
pub mod time;

pub use ast::Statement;
pub use parser::{ParseError, parse_query};
