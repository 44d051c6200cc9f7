//! The text the command line and metadata hand to the library: spans, conventions, presets,
//! numbers for every config field, image masks; and the reference on what parses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use visattn::dump::parse_spans;
use visattn::{AttnShape, Convention, LayerPlan, VarConfig, VisualTokens};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('|');
    let spans = parts.next().unwrap_or("");
    let convention = parts.next().unwrap_or("");
    let preset = parts.next().unwrap_or("");
    let numbers: Vec<f64> = parts.next().unwrap_or("").split(',').filter_map(|v| v.trim().parse().ok()).collect();
    let tokens = (data.len() % 97) + 1;

    let _ = convention.parse::<Convention>();
    let _ = visattn::preset(preset);
    let mut cfg = VarConfig::default();
    for (i, v) in numbers.iter().enumerate() {
        match i {
            0 => cfg.tau = *v,
            1 => cfg.rho = *v,
            2 => cfg.p = *v,
            3 => cfg.summ = *v,
            _ => cfg.sink_dims.push(v.abs() as u32),
        }
    }
    if numbers.len() > 6 {
        cfg.layers = LayerPlan::Only(numbers.iter().map(|v| v.abs() as usize % 64).collect());
    }
    let valid = cfg.validate_for(16, 8).is_ok();
    if let Ok(spans) = parse_spans(spans) {
        if let Ok(visual) = VisualTokens::from_spans(&spans, tokens) {
            assert!(visual.count() >= 1 && visual.first_end() <= tokens);
            if valid {
                // What parses must also run: a uniform layer through the reference.
                let shape = AttnShape::new(2, 1, tokens).unwrap();
                let mut probs = vec![1.0 / tokens as f32; shape.len()];
                let hidden = vec![0.5f32; tokens * 16];
                for l in 0..8 {
                    let _ = visattn::reference::apply_layer(&cfg, cfg.role(l, 8), &visual, Some((&hidden, 16)), &mut probs, shape);
                }
            }
        }
    }
});
