//! `docs/exo-relay-rules.md` and the tests say the same thing: its worked examples are the test
//! table's rows, cell for cell; its reply column and reply table are what the engine answers;
//! its tenant variants are the ones the tests build. Editing one without the other fails here,
//! naming the example and the column.

use super::examples::{observe, EXAMPLES};
use super::*;

const DOCUMENT: &str = include_str!("../../../docs/exo-relay-rules.md");

/// The first table after the line `heading`: its header cells, then its rows. Cells are trimmed
/// and lose their backticks (`<>` is written in code spans so that it shows).
fn table_after(heading: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = DOCUMENT
        .lines()
        .skip_while(|l| l.trim() != heading)
        .skip(1)
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'));
    let cells = |line: &str| -> Vec<String> {
        line.trim()
            .trim_start_matches('|')
            .trim_end_matches('|')
            .split('|')
            .map(|c| c.trim().replace('`', ""))
            .collect()
    };
    let header = cells(
        lines
            .next()
            .unwrap_or_else(|| panic!("docs/exo-relay-rules.md: no table after `{heading}`")),
    );
    let rows = lines.skip(1).map(cells).collect();
    (header, rows)
}

const COLUMNS: [&str; 10] = [
    "id",
    "tenant",
    "peer",
    "certificate",
    "P1",
    "P2",
    "recipient",
    "exo-2023",
    "exo-legacy",
    "reply",
];

/// The rows of the document's example table, cells in the order of `COLUMNS`.
fn document_examples() -> Vec<Vec<String>> {
    let (header, rows) = table_after("### The examples");
    assert_eq!(
        header, COLUMNS,
        "the columns of the document's example table"
    );
    for row in &rows {
        assert_eq!(
            row.len(),
            COLUMNS.len(),
            "example row {row:?}: wrong cell count"
        );
    }
    rows
}

#[test]
fn document_examples_are_the_test_examples() {
    let rows = document_examples();
    let mut wrong = Vec::new();
    for row in &rows {
        let id = row[0].as_str();
        let Some(e) = EXAMPLES.iter().find(|e| e.id == id) else {
            wrong.push(format!(
                "example `{id}` is in the document, not in the tests"
            ));
            continue;
        };
        let ours = [
            e.id,
            e.tenant,
            e.peer,
            e.certificate,
            e.p1,
            e.p2,
            e.recipient,
            e.exo_2023,
            e.exo_legacy,
        ];
        for ((column, documented), tested) in COLUMNS.iter().zip(row).zip(ours) {
            if documented != tested {
                wrong.push(format!(
                    "example `{id}`, column {column}: the document says `{documented}`, the tests `{tested}`"
                ));
            }
        }
    }
    for e in EXAMPLES {
        if !rows.iter().any(|r| r[0] == e.id) {
            wrong.push(format!(
                "example `{}` is in the tests, not in the document",
                e.id
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn document_reply_column_is_what_the_engine_answers() {
    let mut wrong = Vec::new();
    for row in document_examples() {
        let Some(e) = EXAMPLES.iter().find(|e| e.id == row[0]) else {
            continue; // reported by document_examples_are_the_test_examples
        };
        let mut replies: Vec<String> = Vec::new();
        for profile in [Profile::Exo2023, Profile::ExoLegacy] {
            if let Some(r) = observe(e, profile).reply {
                if !replies.contains(&r) {
                    replies.push(r);
                }
            }
        }
        let answered = if replies.is_empty() {
            "—".to_string()
        } else {
            replies.join(" / ")
        };
        if row[9] != answered {
            wrong.push(format!(
                "example `{}`, column reply: the document says `{}`, the engine answers `{answered}`",
                e.id, row[9]
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn document_reply_lines_are_the_engines() {
    let (header, rows) = table_after("## Reply lines");
    assert_eq!(header, ["code", "enhanced", "text", "when"]);
    let mut documented: Vec<String> = rows
        .iter()
        .map(|r| format!("{} {} {}", r[0], r[1], r[2]))
        .collect();
    let mut engine: Vec<String> = [
        Rejection::RelayAccessDenied(RelayDenial::NoOnPremisesConnector),
        Rejection::PartnerConnectorRestriction {
            connector: "P".into(),
        },
        Rejection::DirectSendNotAllowed,
        Rejection::RecipientNotFound,
        Rejection::RequireTls {
            connector: "P".into(),
        },
        Rejection::OtherTenantRecipient { tenant: "T".into() },
    ]
    .iter()
    .map(reply_line)
    .collect();
    documented.sort();
    engine.sort();
    assert_eq!(documented, engine);
}

#[test]
fn document_tenant_variants_are_the_tests() {
    let (header, rows) = table_after("### The tenant");
    assert_eq!(header, ["variant", "differs from base in"]);
    let documented: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        documented, VARIANTS,
        "variant names, in the document's order"
    );
    for v in VARIANTS {
        assert!(
            tenant_set(v).is_some(),
            "variant `{v}` is listed but not built"
        );
    }
    for e in EXAMPLES {
        assert!(
            VARIANTS.contains(&e.tenant),
            "example `{}`: tenant `{}` is not a documented variant",
            e.id,
            e.tenant
        );
    }
}
