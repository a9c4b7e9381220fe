//! Shared helpers live in `bigbrotr-testkit`; this crate only hosts the `it` test binary.
