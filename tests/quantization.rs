//! Embedding quantization against sentence-transformers: `quantize_embeddings` for every
//! precision, with and without calibration, must give the very same integers as Python
//! (`tests/fixtures/quantization/golden.json`, written by `generate.py` beside it), and bad
//! input must give typed errors.

mod common;

use serde_json::Value;
use sieve::encoders::quantization::{Int8Ranges, Precision, QuantizedData, QuantizedEmbeddings, quantize_embeddings};
use sieve::{Embeddings, EncodeOptions, EncoderError, SentenceTransformer};

fn golden() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/quantization/golden.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("golden.json")).expect("JSON")
}

fn matrix(v: &Value) -> Vec<Vec<f64>> {
    v.as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            r.as_array()
                .expect("row")
                .iter()
                .map(|x| x.as_f64().expect("number"))
                .collect()
        })
        .collect()
}

/// Golden floats are float32 values written exactly as doubles.
fn embeddings(v: &Value) -> Embeddings {
    let rows: Vec<Vec<f32>> = matrix(v)
        .iter()
        .map(|r| r.iter().map(|&x| x as f32).collect())
        .collect();
    Embeddings::from_rows(&rows).expect("rectangular")
}

/// The values as integers (or f32 bits for float32), whatever their element type.
fn values(q: &QuantizedEmbeddings) -> Vec<i64> {
    match q.data() {
        QuantizedData::Float32(v) => v.iter().map(|x| i64::from(x.to_bits())).collect(),
        QuantizedData::Int8(v) => v.iter().map(|&x| i64::from(x)).collect(),
        QuantizedData::Uint8(v) => v.iter().map(|&x| i64::from(x)).collect(),
    }
}

fn expected(v: &Value, precision: Precision) -> Vec<i64> {
    matrix(v)
        .concat()
        .into_iter()
        .map(|x| match precision {
            Precision::Float32 => i64::from((x as f32).to_bits()),
            _ => x as i64,
        })
        .collect()
}

const ALL: [Precision; 5] = [
    Precision::Float32,
    Precision::Int8,
    Precision::Uint8,
    Precision::Binary,
    Precision::Ubinary,
];

#[test]
fn quantize_embeddings_matches_sentence_transformers_exactly() {
    let golden = golden();
    let cases = golden["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 5);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let emb = embeddings(&case["embeddings"]);
        let calibration = (!case["calibration"].is_null()).then(|| embeddings(&case["calibration"]));
        for precision in ALL {
            let q = quantize_embeddings(&emb, precision, calibration.as_ref())
                .unwrap_or_else(|e| panic!("{name} {precision}: {e}"));
            let want = expected(&case["outputs"][precision.name()], precision);
            assert_eq!(q.precision(), precision);
            assert_eq!(q.shape(), [emb.len(), want.len() / emb.len()], "{name} {precision}");
            let got = values(&q);
            let differing = got.iter().zip(&want).filter(|(a, b)| a != b).count();
            assert_eq!(
                differing, 0,
                "{name} {precision}: {differing} values differ from Python"
            );
        }
    }
}

#[test]
fn ranges_and_dequantization_match_sentence_transformers() {
    let golden = golden();
    for case in golden["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let emb = embeddings(&case["embeddings"]);
        let source = if case["calibration"].is_null() {
            emb.clone()
        } else {
            embeddings(&case["calibration"])
        };
        let ranges = Int8Ranges::from_embeddings(&source).unwrap();
        let want = matrix(&case["ranges"]);
        let as_f32 = |r: &[f64]| r.iter().map(|&x| x as f32).collect::<Vec<_>>();
        assert_eq!(ranges.min(), as_f32(&want[0]), "{name}");
        assert_eq!(ranges.max(), as_f32(&want[1]), "{name}");
        // Ranges given directly (as saved ones would be) quantize the same.
        let given = Int8Ranges::new(as_f32(&want[0]), as_f32(&want[1])).unwrap();
        for precision in [Precision::Int8, Precision::Uint8] {
            let q = given.quantize(&emb, precision).unwrap();
            assert_eq!(
                values(&q),
                expected(&case["outputs"][precision.name()], precision),
                "{name}"
            );
            let back = matrix(&case["dequantized"][precision.name()]);
            for (i, row) in back.iter().enumerate() {
                assert_eq!(
                    q.dequantize_row(i, Some(&ranges)).unwrap(),
                    as_f32(row),
                    "{name} {precision} row {i}"
                );
            }
        }
    }
}

#[test]
fn precision_names_round_trip() {
    for precision in ALL {
        assert_eq!(precision.name().parse::<Precision>().unwrap(), precision);
        assert_eq!(
            precision.to_string().to_uppercase().parse::<Precision>().unwrap(),
            precision
        );
    }
    let err = "int4".parse::<Precision>().unwrap_err().to_string();
    assert!(err.contains("int4") && err.contains("ubinary"), "{err}");
}

#[test]
fn memory_per_vector() {
    let bytes: Vec<usize> = ALL.iter().map(|p| p.bytes_per_vector(384)).collect();
    assert_eq!(bytes, [1536, 384, 384, 48, 48]);
    let e = Embeddings::new(vec![0.5; 384 * 2], 384).unwrap();
    let q = quantize_embeddings(&e, Precision::Ubinary, None).unwrap();
    assert_eq!((q.bytes_per_row(), q.shape()), (48, [2, 48]));
}

#[test]
fn bad_input_gives_typed_errors() {
    let e = Embeddings::from_rows(&[vec![0.1, 0.2, 0.3], vec![0.3, 0.2, 0.1]]).unwrap();
    let narrow = Embeddings::from_rows(&[vec![0.1, 0.2], vec![0.3, 0.4]]).unwrap();
    let single = Embeddings::from_rows(&[vec![0.1, 0.2, 0.3]]).unwrap();
    let empty = Embeddings::new(Vec::new(), 3).unwrap();

    for precision in [Precision::Int8, Precision::Uint8] {
        assert!(matches!(
            quantize_embeddings(&e, precision, Some(&narrow)),
            Err(EncoderError::DimensionMismatch { expected: 2, got: 3 })
        ));
        assert!(matches!(
            quantize_embeddings(&e, precision, Some(&empty)),
            Err(EncoderError::NotEnoughCalibration { rows: 0, needed: 1 })
        ));
        // One embedding cannot calibrate itself (Python raises too) ...
        assert!(matches!(
            quantize_embeddings(&single, precision, None),
            Err(EncoderError::NotEnoughCalibration { rows: 1, needed: 2 })
        ));
        // ... but calibrates others, and an empty input is an empty result of its precision.
        assert_eq!(quantize_embeddings(&e, precision, Some(&single)).unwrap().len(), 2);
        let none = quantize_embeddings(&empty, precision, None).unwrap();
        assert_eq!((none.len(), none.precision(), none.shape()), (0, precision, [0, 3]));
    }
    // Calibration is only read for int8 / uint8, as in Python.
    assert!(quantize_embeddings(&e, Precision::Binary, Some(&narrow)).is_ok());

    let nan = Embeddings::from_rows(&[vec![0.1, f32::NAN, 0.3], vec![0.3, 0.2, 0.1]]).unwrap();
    let err = quantize_embeddings(&e, Precision::Int8, Some(&nan))
        .unwrap_err()
        .to_string();
    assert!(err.contains("dimension 1") && err.contains("NaN"), "{err}");
    assert!(Int8Ranges::new(vec![0.0, f32::INFINITY], vec![1.0, 1.0]).is_err());
    assert!(Int8Ranges::new(vec![0.0], vec![-1.0]).is_err());
    assert!(matches!(
        Int8Ranges::new(vec![0.0; 2], vec![1.0; 3]),
        Err(EncoderError::DimensionMismatch { expected: 2, got: 3 })
    ));
    let ranges = Int8Ranges::from_embeddings(&narrow).unwrap();
    assert!(matches!(
        ranges.quantize(&e, Precision::Int8),
        Err(EncoderError::DimensionMismatch { expected: 2, got: 3 })
    ));

    // Rows out of range, and int8 rows dequantized without (or with the wrong) ranges.
    let q = quantize_embeddings(&e, Precision::Int8, None).unwrap();
    assert_eq!((q.row_i8(2), q.row_bytes(2)), (None, None));
    assert!(q.dequantize_row(2, None).is_err());
    assert!(
        q.dequantize_row(0, None)
            .unwrap_err()
            .to_string()
            .contains("Int8Ranges")
    );
    assert!(matches!(
        q.dequantize_row(0, Some(&ranges)),
        Err(EncoderError::DimensionMismatch { .. })
    ));
    let f = quantize_embeddings(&e, Precision::Float32, None).unwrap();
    assert_eq!((f.row_i8(0), f.row_bytes(0)), (None, None));
}

#[test]
fn encode_precision_mirrors_python_encode() {
    let model = SentenceTransformer::load(common::fixture("bert-st-mean-norm")).unwrap();
    let texts = [
        "The weather is lovely today.",
        "It's so sunny outside!",
        "He drove to the stadium.",
    ];
    let floats = model.encode(&texts).unwrap();
    for precision in ALL {
        let options = EncodeOptions {
            precision,
            ..Default::default()
        };
        // encode(precision=...) quantizes with ranges from the batch itself.
        let q = model.encode_quantized(&texts, &options).unwrap();
        assert_eq!(q, quantize_embeddings(&floats, precision, None).unwrap(), "{precision}");
        let refused = model.encode_with(&texts, &options);
        if precision == Precision::Float32 {
            assert_eq!(refused.unwrap(), floats);
        } else {
            assert!(refused.unwrap_err().to_string().contains("encode_quantized"));
        }
    }
    let int8 = EncodeOptions {
        precision: Precision::Int8,
        ..Default::default()
    };
    assert!(matches!(
        model.encode_quantized(&texts[..1], &int8),
        Err(EncoderError::NotEnoughCalibration { .. })
    ));
    assert!(model.encode_quantized(&[], &int8).unwrap().is_empty());
}
