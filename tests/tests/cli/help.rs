//! The whole `--help` reference: every command and subcommand, as the binary prints it.

use crate::env::TestEnv;
use crate::snap;

fn walk(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(path.clone());
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let mut p = path.clone();
        p.push(sub.get_name().to_owned());
        walk(sub, p, out);
    }
}

#[test]
fn help_reference() {
    let env = TestEnv::new();
    let mut paths = Vec::new();
    walk(&aether_cli::command(), Vec::new(), &mut paths);
    assert!(paths.len() > 30, "{paths:?}");
    let mut log = String::new();
    for p in paths {
        let mut args: Vec<&str> = p.iter().map(String::as_str).collect();
        args.push("--help");
        let r = env.run(&args);
        assert_eq!(r.code, 0, "{}", r.transcript());
        log.push_str(&format!("$ aether {}\n{}\n", args.join(" "), r.transcript()));
    }
    snap!(&env, "help_reference", log);
}
