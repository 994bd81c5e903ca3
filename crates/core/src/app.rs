//! The app's own wheel as the tiers read it: which of its scripts a build can run.

/// Why the app's scripts leave an artifact that runs one of them nothing to run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("{project} has no console script, so a single-file app of it has nothing to run\n  hint: add [project.scripts], or set `entry = \"module:function\"` in [tool.gradient]")]
    NoEntry { project: String },
    #[error("[tool.gradient] entry `{entry}` is neither a console script of {project} ({scripts}) nor `module:function`")]
    UnknownEntry {
        entry: String,
        project: String,
        scripts: String,
    },
}
