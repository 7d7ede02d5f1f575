//! The simulated Coder deployment's seed data: users, templates (with how fast their agents
//! get ready), template versions (among them the broken ones a rollout must stop on) and
//! workspaces. `fleet sim --help` shows it as a table (`SEED_TABLE`, bin/fleet/cmd_sim.rs).

use std::collections::HashMap;

use uuid::Uuid;

use super::{
    AgentScript, AtWork, Build, CoderSettings, CoderWorld, Import, Param, Template, Used, User,
    Version, Workspace,
};
use crate::sim::{Clock, SimFaults};

/// The name of bulk workspace `i` (1-based): `bulk-0001`; more digits past 9999.
pub(crate) fn bulk_name(i: usize) -> String {
    format!("bulk-{i:04}")
}

fn id(n: u128) -> Uuid {
    // Deterministic ids: 5133xxxx-…: easy to spot in logs.
    Uuid::from_u128(0x5133_0000_0000_4000_8000_0000_0000_0000 | n)
}

fn p(
    name: &'static str,
    kind: &'static str,
    mutable: bool,
    default: &'static str,
    description: &'static str,
) -> Param {
    Param {
        name,
        display_name: name,
        description,
        kind,
        mutable,
        required: false,
        default,
        options: &[],
        min: None,
        max: None,
        increasing: false,
    }
}

/// How many web workspaces carol has (carol/web-01 …).
const WEB_FLEET: usize = 8;

/// How many shop workspaces carol has (carol/shop-01 …), for promotions.
const SHOP_FLEET: usize = 4;

/// Simulated seconds bob/typing is typing for (10 minutes), then it goes quiet.
pub(crate) const TYPING_FOR_SIM_SECS: f64 = 600.0;

/// Coder's prebuilds system user.
const PREBUILDS_USER: Uuid = Uuid::from_u128(0xc42fdf75_3097_471c_8c33_fb52454d81c0);

pub(crate) fn seed(
    clock: &Clock,
    faults: &SimFaults,
    bulk: usize,
    settings: CoderSettings,
) -> CoderWorld {
    let alice = User {
        id: id(0x100),
        username: "alice",
        name: "Alice Example",
    };
    let bob = User {
        id: id(0x101),
        username: "bob",
        name: "Bob Example",
    };
    let carol = User {
        id: id(0x102),
        username: "carol",
        name: "Carol Example",
    };

    let region = Param {
        options: &["us-east", "eu-west", "ap-south"],
        ..p(
            "region",
            "string",
            false,
            "us-east",
            "Where the workspace runs. Cannot be changed later.",
        )
    };
    let cpu = Param {
        min: Some(1),
        max: Some(16),
        ..p("cpu", "number", true, "2", "CPU cores.")
    };
    let dotfiles = p(
        "dotfiles_uri",
        "string",
        true,
        "",
        "A dotfiles repository to install.",
    );
    let disk = Param {
        min: Some(10),
        max: Some(500),
        increasing: true,
        ..p(
            "disk_gb",
            "number",
            true,
            "20",
            "Home disk size in GB; can only grow.",
        )
    };
    let gpu = Param {
        options: &["t4", "a100"],
        ..p("gpu_type", "string", true, "t4", "The GPU model.")
    };
    let namespace = p(
        "namespace",
        "string",
        false,
        "dev",
        "The Kubernetes namespace. Cannot be changed later.",
    );

    let (docker, k8s, ml, web, team) = (id(0x200), id(0x201), id(0x202), id(0x203), id(0x204));
    let shop = id(0x205);
    let prebuilds = User {
        id: PREBUILDS_USER,
        username: "prebuilds",
        name: "Prebuilds",
    };
    let v = |n: u128,
             template_id: Uuid,
             name: &'static str,
             message: &'static str,
             params: Vec<Param>| Version {
        id: id(n),
        template_id,
        name,
        message,
        archived: false,
        import: Import::Done,
        start_fails: None,
        agent: AgentScript::Ready,
        external_agent: false,
        params,
    };
    let versions = vec![
        Version {
            archived: true,
            ..v(
                0x300,
                docker,
                "v0-archived",
                "first draft (archived)",
                vec![region.clone()],
            )
        },
        v(
            0x301,
            docker,
            "v1",
            "initial release",
            vec![region.clone(), cpu.clone()],
        ),
        v(
            0x302,
            docker,
            "v2",
            "add dotfiles",
            vec![region.clone(), cpu.clone(), dotfiles.clone()],
        ),
        v(
            0x303,
            docker,
            "v3",
            "add a growable home disk",
            vec![region.clone(), cpu.clone(), dotfiles.clone(), disk.clone()],
        ),
        Version {
            import: Import::Running,
            ..v(
                0x304,
                docker,
                "v4-importing",
                "still importing",
                vec![region.clone(), cpu.clone()],
            )
        },
        v(
            0x310,
            k8s,
            "2024-06",
            "June hardening",
            vec![namespace.clone()],
        ),
        v(
            0x311,
            k8s,
            "2024-09",
            "September hardening",
            vec![namespace.clone()],
        ),
        v(0x320, ml, "v1", "CUDA 12.2", vec![gpu.clone()]),
        Version {
            start_fails: Some(
                "creating container: image \"ghcr.io/acme/ml:cuda-13-broken\" not found: \
                 manifest unknown",
            ),
            ..v(
                0x321,
                ml,
                "broken-start",
                "CUDA 13 (its image is missing: every start fails)",
                vec![gpu.clone()],
            )
        },
        v(0x330, web, "v1", "nginx 1.26", vec![region.clone()]),
        v(0x331, web, "v2", "nginx 1.27", vec![region.clone()]),
        Version {
            agent: AgentScript::StartError,
            ..v(
                0x332,
                web,
                "v3-start-error",
                "its startup script exits 1: every agent ends start_error",
                vec![region.clone()],
            )
        },
        Version {
            agent: AgentScript::NeverConnects,
            ..v(
                0x333,
                web,
                "v4-never-connects",
                "its agent never connects (status timeout after 120 s)",
                vec![region.clone()],
            )
        },
        Version {
            agent: AgentScript::Slow(20.0),
            ..v(
                0x334,
                web,
                "v5-slow-ready",
                "its startup script takes 20x longer (60 s)",
                vec![region.clone()],
            )
        },
        Version {
            agent: AgentScript::NoScript,
            ..v(
                0x335,
                web,
                "v6-no-script",
                "no startup script: the agent is ready once it connects",
                vec![region.clone()],
            )
        },
        Version {
            external_agent: true,
            ..v(
                0x336,
                web,
                "v7-external",
                "runs an external agent (has_external_agent)",
                vec![region.clone()],
            )
        },
    ];
    let mut versions = versions;
    versions.push(v(0x340, team, "v1", "team image", vec![region.clone()]));
    versions.push(v(
        0x341,
        team,
        "v2",
        "team image, newer",
        vec![region.clone()],
    ));
    // Progressive delivery: shop's active version is v1; v2 (good) and v3-start-error (bad,
    // its agents end start_error) are unpublished, to be canaried and promoted, or not.
    versions.push(v(0x350, shop, "v1", "shop API 1.0", vec![region.clone()]));
    versions.push(v(
        0x351,
        shop,
        "v2",
        "shop API 1.1 (good: builds, agents get ready)",
        vec![region.clone()],
    ));
    versions.push(Version {
        agent: AgentScript::StartError,
        ..v(
            0x352,
            shop,
            "v3-start-error",
            "shop API 1.2 (bad: its startup script exits 1, every agent ends start_error)",
            vec![region.clone()],
        )
    });
    let week_ago = -7.0 * 86_400.0 * clock.speed;
    let mut templates = vec![
        // Workspaces someone is at work in: fleet leaves them alone by default.
        Template {
            id: team,
            name: "team-dev",
            display_name: "Team Dev",
            active_version_id: id(0x341),
            require_active_version: false,
            agent_ready_secs: 1.0,
            updated: week_ago,
        },
        Template {
            id: docker,
            name: "docker-dev",
            display_name: "Docker Dev",
            active_version_id: id(0x303),
            require_active_version: false,
            agent_ready_secs: 1.0,
            updated: week_ago,
        },
        Template {
            id: k8s,
            name: "k8s-secure",
            display_name: "Kubernetes (secure)",
            active_version_id: id(0x311),
            require_active_version: true,
            agent_ready_secs: 1.0,
            updated: week_ago,
        },
        Template {
            id: ml,
            name: "gpu-ml",
            display_name: "GPU ML",
            active_version_id: id(0x321),
            require_active_version: false,
            agent_ready_secs: 1.0,
            updated: week_ago,
        },
        // Rollouts: carol's web fleet. Its startup script takes 3 s; its bad versions build
        // fine and break only once started (what a health-gated rollout must catch).
        Template {
            id: web,
            name: "web",
            display_name: "Web App",
            active_version_id: id(0x330),
            require_active_version: false,
            agent_ready_secs: 3.0,
            updated: week_ago,
        },
    ];
    templates.push(Template {
        id: shop,
        name: "shop",
        display_name: "Shop API",
        active_version_id: id(0x350),
        require_active_version: false,
        agent_ready_secs: 1.0,
        updated: week_ago,
    });

    type Row = (
        u128,
        &'static str,
        Uuid,
        Uuid,
        u128,
        &'static str,
        &'static [(&'static str, &'static str)],
    );
    let rows: [Row; 9] = [
        (
            0x400,
            "dev",
            alice.id,
            docker,
            0x302,
            "start",
            &[
                ("region", "eu-west"),
                ("cpu", "4"),
                ("dotfiles_uri", "https://github.com/alice/dotfiles"),
            ],
        ),
        (
            0x401,
            "api-server",
            alice.id,
            docker,
            0x301,
            "stop",
            &[("region", "us-east"), ("cpu", "2")],
        ),
        (
            0x402,
            "current",
            alice.id,
            docker,
            0x303,
            "start",
            &[
                ("region", "us-east"),
                ("cpu", "2"),
                ("dotfiles_uri", ""),
                ("disk_gb", "40"),
            ],
        ),
        (
            0x403,
            "secure-shell",
            alice.id,
            k8s,
            0x310,
            "start",
            &[("namespace", "alice")],
        ),
        (
            0x404,
            "ml-notebook",
            alice.id,
            ml,
            0x320,
            "start",
            &[("gpu_type", "a100")],
        ),
        (
            0x405,
            "slow-box",
            alice.id,
            docker,
            0x302,
            "start",
            &[("region", "us-east"), ("cpu", "2"), ("dotfiles_uri", "")],
        ),
        (
            0x406,
            "flaky",
            alice.id,
            docker,
            0x302,
            "start",
            &[("region", "us-east"), ("cpu", "2"), ("dotfiles_uri", "")],
        ),
        (
            0x410,
            "dev",
            bob.id,
            docker,
            0x302,
            "start",
            &[("region", "ap-south"), ("cpu", "8"), ("dotfiles_uri", "")],
        ),
        (
            0x411,
            "data-pipeline",
            bob.id,
            docker,
            0x303,
            "stop",
            &[
                ("region", "eu-west"),
                ("cpu", "4"),
                ("dotfiles_uri", ""),
                ("disk_gb", "100"),
            ],
        ),
    ];
    let mut workspaces = Vec::new();
    let mut builds = HashMap::new();
    let mut seq = 0;
    for (n, name, owner, template_id, version, transition, params) in rows {
        seq += 1;
        let build = Build {
            id: id(0x1000 + n),
            job_id: id(0x2000 + n),
            seq,
            number: 7,
            workspace_id: id(n),
            version_id: id(version),
            transition,
            initiator: if owner == alice.id { "alice" } else { "bob" },
            // A day ago in real time, whatever the speed: long finished.
            created: -86_400.0 * clock.speed,
            factor: 1.0,
            fails: None,
            canceled: None,
            on_success: None,
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        workspaces.push(Workspace {
            owner_hidden: false,
            id: id(n),
            name: name.to_string(),
            owner,
            template_id,
            slow: name == "slow-box",
            flaky_left: if name == "flaky" {
                faults.flaky_gets
            } else {
                0
            },
            builds: vec![build.id],
            at_work: AtWork::default(),
        });
        builds.insert(build.id, build);
    }
    // carol's web fleet for rollouts: carol/web-01 … web-08, web v1 (the active version),
    // running, up to date; a rollout points them at a version with --template-version (or a
    // test makes another version active).
    for i in 1..=WEB_FLEET {
        seq += 1;
        let n = 0x500 + i as u128;
        let build = Build {
            id: id(0x1000 + n),
            job_id: id(0x2000 + n),
            seq,
            number: 3,
            workspace_id: id(n),
            version_id: id(0x330),
            transition: "start",
            initiator: "carol",
            created: -86_400.0 * clock.speed,
            factor: 1.0,
            fails: None,
            canceled: None,
            on_success: None,
            params: vec![("region".into(), "eu-west".into())],
        };
        workspaces.push(Workspace {
            owner_hidden: false,
            id: id(n),
            name: format!("web-{i:02}"),
            owner: carol.id,
            template_id: web,
            slow: false,
            flaky_left: 0,
            builds: vec![build.id],
            at_work: AtWork::default(),
        });
        builds.insert(build.id, build);
    }
    // Bulk workspaces for fleet-scale runs: alice/bulk-0001…, docker-dev v2, running, outdated.
    for i in 1..=bulk {
        seq += 1;
        let n = 0x10_0000 + i as u128;
        let build = Build {
            id: id(0x20_0000 + i as u128),
            job_id: id(0x30_0000 + i as u128),
            seq,
            number: 1,
            workspace_id: id(n),
            version_id: id(0x302),
            transition: "start",
            initiator: "alice",
            created: -86_400.0 * clock.speed,
            factor: 1.0,
            fails: None,
            canceled: None,
            on_success: None,
            params: vec![
                ("region".into(), "us-east".into()),
                ("cpu".into(), "2".into()),
                ("dotfiles_uri".into(), String::new()),
            ],
        };
        workspaces.push(Workspace {
            owner_hidden: false,
            id: id(n),
            name: bulk_name(i),
            owner: alice.id,
            template_id: docker,
            slow: false,
            flaky_left: 0,
            builds: vec![build.id],
            at_work: AtWork::default(),
        });
        builds.insert(build.id, build);
    }
    // Someone at work: team-dev workspaces with activity, an AI task, prebuilt, dormant.
    let day = 86_400.0 * clock.speed;
    let at_work: [(u128, &str, Uuid, u128, AtWork); 7] = [
        (
            0x600,
            "typing",
            bob.id,
            0x340,
            AtWork {
                used: Some(Used::Until(TYPING_FOR_SIM_SECS)),
                ..AtWork::default()
            },
        ),
        (
            0x601,
            "pairing",
            bob.id,
            0x340,
            AtWork {
                used: Some(Used::Until(f64::INFINITY)),
                ..AtWork::default()
            },
        ),
        (
            0x602,
            "ai-task",
            bob.id,
            0x340,
            AtWork {
                used: Some(Used::At(-day)),
                app_status: Some(("working", "Refactoring the billing module")),
                task_id: Some(id(0x6020)),
                ..AtWork::default()
            },
        ),
        (
            0x603,
            "idle-box",
            bob.id,
            0x340,
            AtWork {
                used: Some(Used::At(-2.0 * day)),
                ..AtWork::default()
            },
        ),
        (
            0x604,
            "asleep",
            bob.id,
            0x340,
            AtWork {
                used: Some(Used::At(-40.0 * day)),
                dormant_at: Some(-3.0 * day),
                ..AtWork::default()
            },
        ),
        (
            0x605,
            "prebuilt-01",
            prebuilds.id,
            0x340,
            AtWork {
                prebuild: true,
                ..AtWork::default()
            },
        ),
        (
            0x606,
            "notes",
            alice.id,
            0x341,
            AtWork {
                used: Some(Used::Until(f64::INFINITY)),
                ..AtWork::default()
            },
        ),
    ];
    for (n, name, owner, version, at_work) in at_work {
        seq += 1;
        let build = Build {
            id: id(0x1000 + n),
            job_id: id(0x2000 + n),
            seq,
            number: 2,
            workspace_id: id(n),
            version_id: id(version),
            transition: "start",
            initiator: "bob",
            created: -day,
            factor: 1.0,
            fails: None,
            canceled: None,
            on_success: None,
            params: vec![("region".into(), "eu-west".into())],
        };
        workspaces.push(Workspace {
            owner_hidden: false,
            id: id(n),
            name: name.to_string(),
            owner,
            template_id: team,
            slow: false,
            flaky_left: 0,
            builds: vec![build.id],
            at_work,
        });
        builds.insert(build.id, build);
    }
    // carol's shop fleet for promotions: carol/shop-01 … shop-04, shop v1 (the active
    // version), running, up to date.
    for i in 1..=SHOP_FLEET {
        seq += 1;
        let n = 0x700 + i as u128;
        let build = Build {
            id: id(0x1000 + n),
            job_id: id(0x2000 + n),
            seq,
            number: 2,
            workspace_id: id(n),
            version_id: id(0x350),
            transition: "start",
            initiator: "carol",
            created: -86_400.0 * clock.speed,
            factor: 1.0,
            fails: None,
            canceled: None,
            on_success: None,
            params: vec![("region".into(), "us-east".into())],
        };
        workspaces.push(Workspace {
            owner_hidden: false,
            id: id(n),
            name: format!("shop-{i:02}"),
            owner: carol.id,
            template_id: shop,
            slow: false,
            flaky_left: 0,
            builds: vec![build.id],
            at_work: AtWork::default(),
        });
        builds.insert(build.id, build);
    }
    CoderWorld {
        users: vec![alice, bob, carol, prebuilds],
        templates,
        versions,
        workspaces,
        builds,
        next_seq: seq,
        on_success: crate::coder::ServerFeatures::from_version(&settings.version).on_success,
        version: settings.version,
        can_update_templates: settings.can_pin,
        pending_chains: Vec::new(),
        ws_drop_after: settings.ws_drop_after,
        log_flood_bytes: settings.log_flood_bytes,
        max_active_builds: 0,
        start_fails: Vec::new(),
    }
}
