//! Any file handed to `picketctl create -f`: parsing never panics, and whatever parses
//! re-encodes, as JSON and as YAML, to files that parse to the same documents.

#![no_main]

use libfuzzer_sys::fuzz_target;
use proto_spec::wrapped;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(docs) = wrapped::parse(text) {
        for doc in &docs {
            // Validation must not panic either, whatever it decides.
            let _ = doc.resource.validate();
        }
        let json = wrapped::to_json(&docs);
        assert_eq!(wrapped::parse(&json).as_ref(), Ok(&docs), "{json}");
        let yaml = wrapped::to_yaml(&docs);
        assert_eq!(wrapped::parse(&yaml).as_ref(), Ok(&docs), "{yaml}");
    }
});
