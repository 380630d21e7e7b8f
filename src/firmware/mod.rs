//! Firmware: pinned recipes (`checks/firmware/*.toml`), compliance of a node with one, and
//! the steps that bring a node to it over Redfish.

pub mod apply;
pub mod builtin;
pub mod compliance;
#[cfg(test)]
mod compliance_tests;
pub mod error;
pub mod findings;
pub mod inband;
pub mod package;
pub mod plan;
pub mod rack;
pub mod recipe;
pub mod recipe_load;
pub mod recipe_validate;
pub mod version;

pub use compliance::{judge, Compliance, Entry, Observed, Status};
pub use error::RecipeError;
pub use recipe::{Activation, Component, InBand, Match, Method, Package, Recipe, RedfishProperty, Tray};
pub use recipe_load::{load_builtin, load_dir, load_file, load_set, parse_recipe, select, LoadedRecipe};
