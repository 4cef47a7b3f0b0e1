//! `no-production-references`: nothing left in the target may reach
//! production. Foreign servers and user mappings, functions and views,
//! logical-replication subscriptions, `pg_cron` jobs, copied timer rows
//! (db-scheduler, Quartz), the policy's config tables and, in full mode,
//! every text column of every copied table are searched for hosts matching
//! the production patterns; evidence names objects, tables and columns,
//! never a value.

use cutover_db::schema::quote_identifier as quote;
use cutover_db::{Column, Database, Engine, LogicalType, Value};

use super::{Builder, Check, Pair, VerifyOptions};
use crate::error::Result;
use crate::policy::Policy;
use crate::sql::texts;

/// Host names in a text: URL hosts and bare dotted names.
fn hosts_in(text: &str) -> Vec<String> {
    static HOST: std::sync::LazyLock<Option<regex::Regex>> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*").ok()
    });
    let Some(pattern) = HOST.as_ref() else {
        return Vec::new();
    };
    pattern
        .find_iter(text)
        .map(|found| found.as_str().to_owned())
        .collect()
}

pub(super) async fn production_references(
    target: &Database,
    policy: &Policy,
    pairs: &[Pair<'_>],
    options: &VerifyOptions,
) -> Result<Check> {
    let mut check = Builder::new("no-production-references");
    // Timer rows copied from production fire in acceptance, whatever their hosts.
    for pair in pairs
        .iter()
        .filter(|pair| pair.action == crate::policy::Action::Copy)
    {
        let (Some(kind), Some(target_table)) =
            (crate::targets::timer_table(pair.source), pair.target)
        else {
            continue;
        };
        let rows = crate::sql::count(
            target,
            &format!("SELECT count(*) FROM {}", target_table.name.quoted()),
            "a timer table",
        )
        .await?;
        let kept =
            crate::check::policy_table(policy, pair.source).is_some_and(|table| table.keep_timers);
        if rows > 0 && kept {
            check.notes.push(format!(
                "{}: {rows} {kind} timer rows copied on purpose (keep_timers)",
                target_table.name.name
            ));
        } else if rows > 0 {
            check.failures.push(format!(
                "{}: {rows} {kind} timer rows copied from production would fire in acceptance (set the table's action to skip, or keep_timers = true where production moved)",
                target_table.name.name
            ));
        } else {
            check.notes.push(format!(
                "{}: a {kind} timer table, empty",
                target_table.name.name
            ));
        }
    }
    let subscriptions = if target.engine() == Engine::Postgres {
        subscriptions(target, &mut check).await?
    } else {
        None
    };
    if options.forbid_hosts.is_empty() {
        check.skipped = Some(
            "hosts not looked for: no production host patterns (forbid_hosts in the policy, or --forbid-host)"
                .into(),
        );
        return Ok(check.finish());
    }
    let forbidden = |text: &str| {
        hosts_in(text).into_iter().find_map(|host| {
            options
                .forbid_hosts
                .iter()
                .find(|pattern| crate::targets::matches_pattern(pattern, &host))
                .cloned()
        })
    };
    let mut looked_at = Vec::new();
    if target.engine() == Engine::Postgres {
        let servers = texts(
            target,
            "SELECT 'foreign server ' || quote_ident(s.srvname), coalesce(array_to_string(s.srvoptions, ' '), '') \
             FROM pg_foreign_server s \
             UNION ALL SELECT 'user mapping of ' || quote_ident(s.srvname), coalesce(array_to_string(m.umoptions, ' '), '') \
             FROM pg_user_mapping m JOIN pg_foreign_server s ON s.oid = m.umserver",
            2,
            "the target's foreign servers",
        )
        .await?;
        looked_at.push(format!(
            "{} foreign servers and user mappings",
            servers.len()
        ));
        // Connection strings written into functions (dblink calls) and views.
        let code = texts(
            target,
            "SELECT 'function ' || p.oid::regprocedure::text, coalesce(p.prosrc, '') FROM pg_proc p \
             JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e') \
             UNION ALL SELECT 'view ' || c.oid::regclass::text, pg_get_viewdef(c.oid) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
            2,
            "the target's functions and views",
        )
        .await?;
        looked_at.push(format!("{} functions and views", code.len()));
        let mut servers = servers;
        if let Some(subscriptions) = subscriptions {
            looked_at.push(format!("{} subscriptions", subscriptions.len()));
            servers.extend(subscriptions);
        }
        // pg_cron's jobs, where its table exists in this database.
        let cron = crate::sql::count(
            target,
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'cron' AND c.relname = 'job'",
            "pg_cron's table",
        )
        .await?;
        if cron > 0 {
            let jobs = texts(
                target,
                "SELECT 'pg_cron job ' || jobid::text, coalesce(command, '') || ' ' || coalesce(nodename, '') \
                 || ' ' || coalesce(database, '') FROM cron.job",
                2,
                "the target's pg_cron jobs",
            )
            .await?;
            looked_at.push(format!("{} pg_cron jobs", jobs.len()));
            servers.extend(jobs);
        }
        for object in &code {
            if let Some(pattern) = forbidden(&object[1]) {
                check
                    .failures
                    .push(format!("{}: names a host matching {pattern}", object[0]));
            }
        }
        for server in &servers {
            if let Some(pattern) = forbidden(&server[1]) {
                check
                    .failures
                    .push(format!("{}: names a host matching {pattern}", server[0]));
            }
        }
    }
    let mut copied_tables = 0;
    for pair in pairs {
        let config =
            crate::check::policy_table(policy, pair.source).is_some_and(|table| table.config);
        // Config tables always; in full mode, every copied table too.
        let searched = config || (options.full && pair.action == crate::policy::Action::Copy);
        let (true, Some(target_table)) = (searched, pair.target) else {
            continue;
        };
        let columns: Vec<&Column> = target_table
            .columns
            .iter()
            .filter(|column| column.logical_type == Some(LogicalType::Text))
            .collect();
        if config {
            looked_at.push(format!("config table {}", target_table.name.name));
        } else {
            copied_tables += 1;
        }
        for column in columns {
            let name = quote(&column.name);
            let mut rows = target
                .query(
                    &format!(
                        "SELECT {name} FROM {} WHERE {name} IS NOT NULL",
                        target_table.name.quoted()
                    ),
                    vec![column.clone()],
                    &format!("table {}", target_table.name),
                )
                .await?;
            let mut matches = 0u64;
            let mut example_pattern = None;
            while let Some(row) = rows.next().await {
                if let Some(Value::Text(text)) = row?.first() {
                    if let Some(pattern) = forbidden(text) {
                        matches += 1;
                        example_pattern.get_or_insert(pattern);
                    }
                }
            }
            if let Some(pattern) = example_pattern {
                check.failures.push(format!(
                    "{}.{}: {matches} rows name a host matching {pattern}",
                    target_table.name.name, column.name
                ));
            }
        }
    }
    if copied_tables > 0 {
        looked_at.push(format!("the text columns of {copied_tables} copied tables"));
    }
    check.notes.push(format!(
        "looked at {} for hosts matching {}",
        if looked_at.is_empty() {
            "nothing".to_owned()
        } else {
            looked_at.join(", ")
        },
        options.forbid_hosts.join(", ")
    ));
    Ok(check.finish())
}

/// The target's logical-replication subscriptions with their connection
/// strings, read once. Reading those takes a superuser: where they cannot
/// be read, every enabled subscription is a failure (it may pull from
/// production and cannot be checked) and `None` is returned.
async fn subscriptions(target: &Database, check: &mut Builder) -> Result<Option<Vec<Vec<String>>>> {
    const IN_THIS_DATABASE: &str =
        "subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())";
    if let Ok(subscriptions) = texts(
        target,
        &format!(
            "SELECT 'subscription ' || quote_ident(subname), coalesce(subconninfo, '') \
             FROM pg_subscription WHERE {IN_THIS_DATABASE}"
        ),
        2,
        "the target's subscriptions",
    )
    .await
    {
        return Ok(Some(subscriptions));
    }
    for name in crate::sql::first_column(
        target,
        &format!("SELECT quote_ident(subname) FROM pg_subscription WHERE subenabled AND {IN_THIS_DATABASE}"),
        "the target's subscriptions",
    )
    .await?
    {
        check.failures.push(format!(
            "subscription {name}: enabled, and its connection cannot be read to check it (a superuser can): disable it in acceptance"
        ));
    }
    Ok(None)
}
