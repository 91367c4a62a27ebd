//! Safe local files: directory handles that never follow a symlink inside them.

pub mod tree;
