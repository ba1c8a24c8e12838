//! Test fixtures and harness for the Polis end-to-end tests.
