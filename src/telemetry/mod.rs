//! Metrics registry, structured JSON logging and request ids. Not implemented yet (issue 3);
//! it must never put a secret (token, password) in a log line or a label.
