//! Loading firmware recipes: one file, a directory of them, or the built-in set; and choosing
//! the one for a node.
//!
//! Errors are placed like every other TOML input's (`crate::toml_error`): file, line, column
//! and field.

use std::path::{Path, PathBuf};

use super::builtin;
use super::error::RecipeError;
use super::recipe::{Recipe, Tray};
use super::recipe_validate;
use crate::checks::spec_error::SpecIssue;
use crate::toml_error::{from_str_located, locate_issues, Located};

/// A parsed recipe and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedRecipe {
    pub recipe: Recipe,
    /// The file it was read from; for built-in recipes `built-in/<file>`.
    pub origin: PathBuf,
}

/// Parses and checks one recipe. `file` is only used to name it in errors.
pub fn parse_recipe(text: &str, file: &Path) -> Result<Recipe, RecipeError> {
    let recipe: Recipe = from_str_located(text).map_err(|Located { line, column, field, message }| {
        RecipeError::Parse { file: file.to_path_buf(), line, column, field, message }
    })?;
    let issues: Vec<SpecIssue> = locate_issues(text, recipe_validate::check(&recipe))
        .into_iter()
        .map(|l| SpecIssue { line: l.line, column: l.column, field: l.field, message: l.message })
        .collect();
    if issues.is_empty() {
        Ok(recipe)
    } else {
        Err(RecipeError::Invalid { file: file.to_path_buf(), issues })
    }
}

/// Reads and parses one recipe file.
pub fn load_file(path: &Path) -> Result<LoadedRecipe, RecipeError> {
    let text = crate::input::read_to_string(path, crate::input::Input::Recipe)
        .map_err(|source| RecipeError::Read { file: path.to_path_buf(), source })?;
    Ok(LoadedRecipe { recipe: parse_recipe(&text, path)?, origin: path.to_path_buf() })
}

/// Every `firmware/*.toml` under a checks directory, sorted by file name. Fails on the first
/// malformed file: a half-loaded set could judge a node against the wrong recipe.
pub fn load_dir(checks_dir: &Path) -> Result<Vec<LoadedRecipe>, RecipeError> {
    let dir = checks_dir.join("firmware");
    let files = crate::input::toml_files(&dir).map_err(|source| RecipeError::ReadDir { dir: dir.clone(), source })?;
    if files.is_empty() {
        return Err(RecipeError::EmptyDir { dir: checks_dir.to_path_buf() });
    }
    let recipes = files.iter().map(|f| load_file(f)).collect::<Result<Vec<_>, _>>()?;
    check_unique(&recipes)?;
    Ok(recipes)
}

/// The recipes built into the binary.
pub fn load_builtin() -> Result<Vec<LoadedRecipe>, RecipeError> {
    let recipes = builtin::RECIPES
        .iter()
        .map(|(file, text)| {
            let origin = Path::new("built-in").join(file);
            Ok(LoadedRecipe { recipe: parse_recipe(text, &origin)?, origin })
        })
        .collect::<Result<Vec<_>, RecipeError>>()?;
    check_unique(&recipes)?;
    Ok(recipes)
}

/// The built-in recipes, or those in `checks_dir/firmware` when given.
pub fn load_set(checks_dir: Option<&Path>) -> Result<Vec<LoadedRecipe>, RecipeError> {
    match checks_dir {
        Some(dir) => load_dir(dir),
        None => load_builtin(),
    }
}

/// The recipe to judge a node by: the one named, or else the only one for its platform and
/// tray kind. Two that fit are an error, never a silent pick.
pub fn select<'a>(
    recipes: &'a [LoadedRecipe],
    name: Option<&str>,
    platform: &str,
    tray: Tray,
) -> Result<&'a LoadedRecipe, RecipeError> {
    let known = || recipes.iter().map(|r| r.recipe.name.as_str()).collect::<Vec<_>>().join(", ");
    if let Some(name) = name {
        return recipes
            .iter()
            .find(|r| r.recipe.name == name)
            .ok_or_else(|| RecipeError::Unknown { name: name.to_string(), known: known() });
    }
    let fits: Vec<&LoadedRecipe> =
        recipes.iter().filter(|r| r.recipe.platform.as_deref() == Some(platform) && r.recipe.tray == tray).collect();
    match fits.as_slice() {
        [one] => Ok(one),
        [] => Err(RecipeError::NoneFits { platform: platform.to_string(), tray: tray.as_str(), known: known() }),
        many => Err(RecipeError::Ambiguous {
            platform: platform.to_string(),
            tray: tray.as_str(),
            count: many.len(),
            names: many.iter().map(|r| r.recipe.name.as_str()).collect::<Vec<_>>().join(", "),
        }),
    }
}

fn check_unique(recipes: &[LoadedRecipe]) -> Result<(), RecipeError> {
    for (i, a) in recipes.iter().enumerate() {
        if let Some(b) = recipes[i + 1..].iter().find(|b| b.recipe.name == a.recipe.name) {
            return Err(RecipeError::DuplicateName {
                name: a.recipe.name.clone(),
                first: a.origin.clone(),
                second: b.origin.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"name = "t"
description = "test"
tray = "node"
source = "a test"

[[components]]
id = "bmc"
name = "BMC firmware"
version = "GH200-24.05-2"
prefix = "GH200-"
source = "recorded"
package = "bmc_pkg"
match = { redfish = ["FW_BMC_0"] }

[[packages]]
id = "bmc_pkg"
file = "bmc.fwpkg"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
"#;

    fn parse(text: &str) -> Result<Recipe, RecipeError> {
        parse_recipe(text, Path::new("firmware/t.toml"))
    }

    /// (line, field, message) of the first problem.
    fn located(err: RecipeError) -> (usize, String, String) {
        match err {
            RecipeError::Parse { line, field, message, .. } => (line, field, message),
            RecipeError::Invalid { issues, .. } => {
                let i = issues.into_iter().next().expect("at least one issue");
                (i.line, i.field, i.message)
            }
            other => panic!("unexpected error {other}"),
        }
    }

    #[test]
    fn a_sound_recipe_parses() {
        let r = parse(GOOD).expect("valid");
        assert_eq!(r.components[0].matcher.redfish, ["FW_BMC_0"]);
        assert_eq!(r.package("bmc_pkg").map(|p| p.task_timeout_s), Some(1800));
    }

    #[test]
    fn every_builtin_recipe_parses_and_every_file_is_built_in() {
        let builtin = load_builtin().expect("built-in recipes parse");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("checks");
        let from_dir = load_dir(&dir).expect("checks/firmware parses");
        let a: Vec<_> = from_dir.iter().map(|r| &r.recipe).collect();
        let b: Vec<_> = builtin.iter().map(|r| &r.recipe).collect();
        assert_eq!(a, b, "build.rs must embed every file in checks/firmware");
    }

    #[test]
    fn builtin_recipes_name_platforms_that_exist() {
        let specs = crate::checks::spec_load::load_builtin().expect("specs");
        for r in load_builtin().expect("recipes") {
            if let Some(p) = &r.recipe.platform {
                assert!(specs.iter().any(|s| &s.platform.name == p), "{}: no platform spec {p}", r.origin.display());
            }
        }
    }

    #[test]
    fn unknown_field_names_file_line_and_field() {
        let text = GOOD.replace("prefix = \"GH200-\"", "prefix = \"GH200-\"\ncolour = 1");
        let err = parse(&text).expect_err("unknown field");
        assert!(err.to_string().starts_with("firmware/t.toml:11:1: field `components[0].colour`"), "{err}");
    }

    #[test]
    fn a_pinned_version_that_does_not_parse_is_refused() {
        let text = GOOD.replace("version = \"GH200-24.05-2\"", "version = \"BF-24.07-14\"");
        let (line, field, message) = located(parse(&text).expect_err("wrong prefix"));
        assert_eq!((line, field.as_str()), (9, "components[0].version"));
        assert!(message.contains("does not start with \"GH200-\""), "{message}");
    }

    #[test]
    fn a_bad_checksum_and_an_unknown_package_are_placed() {
        let text = GOOD.replace(&"0".repeat(64), "abc").replace("package = \"bmc_pkg\"", "package = \"nope\"");
        let err = parse(&text).expect_err("two problems");
        let RecipeError::Invalid { issues, .. } = err else { panic!("expected Invalid") };
        let fields: Vec<(usize, &str)> = issues.iter().map(|i| (i.line, i.field.as_str())).collect();
        assert_eq!(
            fields,
            [(12, "components[0].package"), (18, "packages[0].sha256"), (16, "packages[0].id")],
            "{issues:?}"
        );
    }

    #[test]
    fn a_component_needs_exactly_one_source() {
        let text = GOOD
            .replace("match = { redfish = [\"FW_BMC_0\"] }", "match = { redfish = [\"FW_BMC_0\"], inband = \"bios\" }");
        let (line, field, _) = located(parse(&text).expect_err("two sources"));
        assert_eq!((line, field.as_str()), (13, "components[0].match"));
        let text = GOOD.replace("match = { redfish = [\"FW_BMC_0\"] }", "match = { redfish = [\"FW_[BMC\"] }");
        let (_, field, message) = located(parse(&text).expect_err("bad pattern"));
        assert_eq!(field, "components[0].match.redfish[0]");
        assert!(message.contains("is not a pattern"), "{message}");
    }

    #[test]
    fn selection_by_name_or_by_platform_and_tray() {
        let recipes = load_builtin().expect("recipes");
        let gb = select(&recipes, None, "gb200-nvl72-tray", Tray::Compute).expect("one for GB200 compute trays");
        assert_eq!(gb.recipe.tray, Tray::Compute);
        assert!(matches!(select(&recipes, Some("nope"), "x", Tray::Node), Err(RecipeError::Unknown { .. })));
        assert!(matches!(select(&recipes, None, "generic", Tray::Node), Err(RecipeError::NoneFits { .. })));
        let mut two = recipes.clone();
        let mut copy = gb.clone();
        copy.recipe.name = "copy".into();
        two.push(copy);
        let err = select(&two, None, "gb200-nvl72-tray", Tray::Compute).expect_err("two fit");
        assert!(err.to_string().contains("choose one with --recipe"), "{err}");
    }

    #[test]
    fn duplicate_names_and_missing_directories_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(load_dir(dir.path()), Err(RecipeError::ReadDir { .. })));
        std::fs::create_dir(dir.path().join("firmware")).expect("mkdir");
        assert!(matches!(load_dir(dir.path()), Err(RecipeError::EmptyDir { .. })));
        for f in ["a.toml", "b.toml"] {
            std::fs::write(dir.path().join("firmware").join(f), GOOD).expect("write");
        }
        assert!(matches!(load_dir(dir.path()), Err(RecipeError::DuplicateName { .. })));
    }
}
