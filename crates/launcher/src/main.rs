//! The frozen executable's entry point: find the payload, extract it once, exec Python.

use gradient_launcher::{prepare, read_trailer, Launch, LaunchError, Target};
use std::os::unix::process::CommandExt;
use std::process::Command;

fn main() {
    let error = match run() {
        Ok(never) => match never {},
        Err(error) => error,
    };
    let exe = std::env::args().next().unwrap_or_else(|| "app".into());
    match error.hint() {
        Some(hint) => eprintln!("{exe}: {error}\n  hint: {hint}"),
        None => eprintln!("{exe}: {error}"),
    }
    std::process::exit(1);
}

fn run() -> Result<std::convert::Infallible, LaunchError> {
    let exe = std::env::current_exe()?;
    let mut file = std::fs::File::open(&exe)?;
    let trailer = read_trailer(&mut file)?;
    let prepared = prepare(&mut file, &trailer)?;
    drop(file);
    let launch_file = prepared.folder.join("launch.txt");
    let text = std::fs::read_to_string(&launch_file).map_err(|e| {
        LaunchError::Launch(format!("cannot read `{}`: {e}", launch_file.display()))
    })?;
    let launch = Launch::parse(&text)?;

    let mut args = std::env::args_os();
    let invoked = args
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    let script = if launch.script(&invoked).is_some() {
        invoked
    } else if let Some(default) = &launch.default {
        default.clone()
    } else {
        // A multi-call executable with no default: like busybox, say what it runs as.
        let names: Vec<&str> = launch.scripts.iter().map(|(n, _)| n.as_str()).collect();
        eprintln!(
            "{invoked}: run this executable as one of its scripts: {}\n  hint: make a link \
             named like the script (`ln -s {invoked} {}`), or build with `entry = \"NAME\"` in \
             [tool.gradient] to choose a default",
            names.join(", "),
            names[0]
        );
        std::process::exit(2);
    };
    let target = launch.script(&script).expect("launch.txt was checked");
    // -I: no PYTHONPATH, PYTHONHOME or user site-packages from the host. exec, not spawn:
    // arguments, standard streams, exit status and signals belong to the app.
    let code = match Launch::target_kind(target) {
        Target::Function(function) => Launch::code(function),
        Target::PythonFile(path) => {
            Launch::file_code(&prepared.folder.join(path).to_string_lossy())
        }
        Target::Program(path) => {
            let error = Command::new(prepared.folder.join(path))
                .arg0(&script)
                .args(args)
                .exec();
            return Err(LaunchError::Io(error));
        }
    };
    let error = Command::new(prepared.folder.join(&launch.python))
        .arg("-I")
        .arg("-c")
        .arg(code)
        .arg(&script)
        .args(args)
        .exec();
    Err(LaunchError::Io(error))
}
