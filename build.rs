//! Generates one typed client per OpenAPI spec in `openapi/` with progenitor.
//!
//! The specs are the contract; the generated code lands in `OUT_DIR` and is `include!`d by
//! `sdk/`. Values a server may extend (states, statuses, providers) are swapped for the open
//! types in `sdk/` (an unknown value is kept, never a parse failure).

use std::{fs, path::Path};

use progenitor::{GenerationSettings, Generator, InterfaceStyle, TypeImpl};

/// A spec, the file its client is written to, and the schemas replaced by open types in
/// `sdk/`: (schema name, replacement type path).
type Spec = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const SPECS: &[Spec] = &[
    (
        "openapi/molecule-cp.yaml",
        "molecule_cp.rs",
        &[
            ("Provider", "crate::molecule::Provider"),
            ("MigrationState", "crate::molecule::MigrationState"),
            ("Migration", "crate::molecule::Migration"),
        ],
    ),
    ("openapi/molecule-tenant.yaml", "molecule_tenant.rs", &[]),
    (
        "openapi/coder.yaml",
        "coder.rs",
        &[
            ("WorkspaceStatus", "crate::coder::WorkspaceStatus"),
            ("WorkspaceTransition", "crate::coder::WorkspaceTransition"),
            ("ProvisionerJobStatus", "crate::coder::JobStatus"),
            ("JobErrorCode", "crate::coder::JobErrorCode"),
            ("BuildReason", "crate::coder::BuildReason"),
            ("WorkspaceAppStatusState", "crate::coder::AppStatusState"),
            ("NullUuid", "crate::coder::NullUuid"),
            ("WorkspaceAgentStatus", "crate::coder::AgentStatus"),
            ("WorkspaceAgentLifecycle", "crate::coder::AgentLifecycle"),
            ("ServerSentEventType", "crate::coder::ServerSentEventType"),
            ("LogLevel", "crate::coder::LogLevel"),
            ("LogSource", "crate::coder::LogSource"),
            ("ValidationMonotonicOrder", "crate::coder::MonotonicOrder"),
            (
                "TemplateVersionParameterType",
                "crate::coder::ParameterType",
            ),
            // Coder's description says an array, the server sends one object: read both.
            (
                "TemplateVersionsByName",
                "crate::coder::TemplateVersionsByName",
            ),
        ],
    ),
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=openapi");
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    for (spec_path, out_name, replacements) in SPECS {
        println!("cargo:rerun-if-changed={spec_path}");
        if let Err(reason) = generate(spec_path, &Path::new(&out_dir).join(out_name), replacements)
        {
            // A broken spec fails the build, naming the file and the reason.
            eprintln!("error: {spec_path}: {reason}");
            println!("cargo:warning={spec_path}: {reason}");
            std::process::exit(1);
        }
    }
    pack_relative_relocations();
}

/// Release binaries keep their relative relocations packed (DT_RELR): the loader then reads
/// 8 kB of them at start instead of 560 kB, which stayed resident in every fleet-mcp
/// (bench/README.md). Only for a build for this machine whose C library reads the packed
/// form (glibc 2.36 or later; its linkers know the flag): a binary that needs it says so to
/// an older loader, which refuses it by name rather than running it unrelocated.
fn pack_relative_relocations() {
    let var = |name| std::env::var(name).unwrap_or_default();
    let target = var("TARGET");
    if var("PROFILE") != "release" || target != var("HOST") || !target.ends_with("-linux-gnu") {
        return;
    }
    let Ok(out) = std::process::Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
    else {
        return;
    };
    // "glibc 2.36"
    let text = String::from_utf8_lossy(&out.stdout);
    let mut version = text
        .trim()
        .trim_start_matches("glibc ")
        .split('.')
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let (major, minor) = (version.next().unwrap_or(0), version.next().unwrap_or(0));
    if (major, minor) >= (2, 36) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

fn generate(spec_path: &str, out: &Path, replacements: &[(&str, &str)]) -> Result<(), String> {
    let text = fs::read_to_string(spec_path).map_err(|e| format!("cannot read: {e}"))?;
    let spec: openapiv3::OpenAPI = serde_yaml_ng::from_str(&text)
        .map_err(|e| format!("not a valid OpenAPI 3.0 document: {e}"))?;
    if !spec.openapi.starts_with("3.0.") {
        return Err(format!(
            "OpenAPI {} is not supported; write 3.0.x",
            spec.openapi
        ));
    }
    let mut settings = GenerationSettings::new();
    settings.with_interface(InterfaceStyle::Positional);
    // Every client carries what its `exec` hook (sdk/http.rs) needs: the retry policy for
    // reads and the bound on requests in flight.
    settings.with_inner_type(
        "crate::http::Calls"
            .parse::<proc_macro2::TokenStream>()
            .expect("a type path"),
    );
    for (schema, replacement) in replacements {
        settings.with_replacement(*schema, *replacement, [TypeImpl::Display].into_iter());
    }
    let tokens = std::panic::catch_unwind(|| Generator::new(&settings).generate_tokens(&spec))
        .map_err(|panic| {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "progenitor panicked".into());
            format!("progenitor cannot generate a client: {msg}")
        })?
        .map_err(|e| format!("progenitor cannot generate a client: {e}"))?;
    let file = syn::parse2(tokens).map_err(|e| format!("generated code does not parse: {e}"))?;
    let code = prettyplease::unparse(&file);
    fs::write(out, code).map_err(|e| format!("cannot write {}: {e}", out.display()))
}
