//! Wherever the docs, the chart, the CRDs and the e2e scripts tell a person which Elasticsearch
//! privileges the operator needs, they name every one of `es::privileges::REQUIRED` (the list is
//! data in one place; these texts are written by hand).

use std::path::Path;

use es_inference_operator::es::privileges::REQUIRED;

const TEXTS: &[&str] = &[
    "README.md",
    "docs/install.md",
    "charts/es-inference-operator/values.yaml",
    "charts/es-inference-operator/templates/NOTES.txt",
    "crds/elasticsearchconnections.es-inference.dev.yaml",
    "crds/inferenceendpoints.es-inference.dev.yaml",
    ".ci/e2e-elasticsearch.sh",
    ".ci/e2e-eck.sh",
];

#[test]
fn every_mention_of_the_privileges_names_all_of_them() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut wrong = Vec::new();
    let mut mentions = 0;
    for file in TEXTS {
        let text = std::fs::read_to_string(root.join(file)).expect(file);
        // A mention: a paragraph (lines up to a blank one) naming manage_inference.
        for paragraph in text
            .split("\n\n")
            .filter(|p| p.contains("manage_inference"))
        {
            mentions += 1;
            let flat = paragraph.replace(['\n', '#', '`', '"'], " ");
            let flat = flat.split_whitespace().collect::<Vec<_>>().join(" ");
            for p in REQUIRED {
                if !flat.contains(p.name) {
                    wrong.push(format!(
                        "{file}: {:?} lacks {}",
                        first_line(paragraph),
                        p.name
                    ));
                }
            }
        }
    }
    assert!(mentions >= TEXTS.len(), "mentions found: {mentions}");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

fn first_line(p: &str) -> &str {
    p.trim().lines().next().unwrap_or_default()
}
