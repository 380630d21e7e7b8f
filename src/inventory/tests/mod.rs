//! Tests of the inventory against real database files in temporary directories.
