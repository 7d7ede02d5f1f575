//! `fleet doctor`: what works, plane by plane, for the context in use or the environment.

use std::time::Duration;

use clap::Args;
use fleet::{Error, doctor::DoctorOptions};

use crate::{
    cli::{self, GlobalOpts, OutputFormat},
    config_text::{advice, describe, examine, report_lines},
    out,
};

/// `fleet doctor` arguments.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The most time one check may take (a server that does not answer in time is named).
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = cli::parse_duration)]
    pub timeout: Duration,
}

/// Runs `fleet doctor`; returns the exit code.
pub async fn run(args: DoctorArgs, global: &GlobalOpts) -> fleet::Result<i32> {
    if global.sim {
        return Err(Error::InvalidInput(
            "fleet doctor checks the configured control planes, not --sim: start `fleet sim` \
             and save it as a context with the command it prints, then run `fleet doctor --context sim`"
                .into(),
        ));
    }
    let resolver = global
        .resolver
        .clone()
        .ok_or_else(|| Error::InvalidInput("the configuration was not read".into()))?;
    // A token that cannot be got is a failed check here, not an error.
    let resolver = resolver.lenient();
    let coder_settings = resolver.coder()?;
    let molecule_settings = resolver.molecule()?;
    crate::config_text::never_print_tokens(&coder_settings, &molecule_settings);
    cli::print_warnings(&coder_settings.warnings);
    cli::print_warnings(&molecule_settings.warnings);
    let options = DoctorOptions {
        check_timeout: args.timeout,
        http: fleet::HttpOptions {
            insecure_http: global.insecure_http,
            ..fleet::HttpOptions::default()
        },
    };
    let findings = examine(coder_settings, molecule_settings, &options).await;
    let code = findings.exit_code();
    if global.output == OutputFormat::Json {
        out::json(&serde_json::json!({
            "config_file": resolver.path(),
            "context": resolver.chosen(),
            "ok": code == 0,
            "exit_code": code,
            "coder": {
                "settings": findings.coder_settings,
                "report": findings.coder,
                "advice": advice(&findings.coder.checks, &findings.coder_settings, None),
            },
            "molecule": {
                "settings": findings.molecule_settings,
                "report": findings.molecule,
                "advice": advice(&findings.molecule.checks, &findings.coder_settings, Some(&findings.molecule_settings)),
            },
        }));
        return Ok(code);
    }
    for line in describe(
        &resolver,
        &findings.coder_settings,
        &findings.molecule_settings,
    ) {
        out::line(line);
    }
    out::line("");
    for line in report_lines(&findings) {
        out::line(line);
    }
    Ok(code)
}
