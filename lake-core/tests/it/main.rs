//! Integration tests of lake-core (one binary, to keep link times down).

mod idents;
mod maintenance;
mod pipeline;
mod storage;
mod traits;
