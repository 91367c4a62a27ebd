//! Issue 8: what a hostile or careless hand can do to configs, files and the network.

mod config;
mod credentials;
mod files;
mod messages;
mod network;
mod sparse;
