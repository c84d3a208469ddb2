//! YAML configuration types and their validation, shared by the binaries. Not implemented yet
//! (issue 3); it must never accept a file it cannot explain: every error names the key and line.
