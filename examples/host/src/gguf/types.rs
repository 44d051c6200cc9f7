//! The tensor types a GGUF file may store (ggml's `enum ggml_type`, gguf-py's
//! `GGMLQuantizationType`), with the block layout of each: how many elements a block holds and
//! how many bytes it takes (`ggml/src/ggml-common.h`, gguf-py's `GGML_QUANT_SIZES`).

use crate::error::{Error, Result};

/// QK_K: the super-block of the K-quants, the IQ and TQ types.
const QK_K: u64 = 256;

macro_rules! ggml_types {
    ($($(#[$doc:meta])* $variant:ident = $id:literal, $name:literal, $elems:expr, $bytes:expr;)*) => {
        /// A tensor type of ggml that GGUF files store, by its id in the file. Every type
        /// llama.cpp defines today; the ids it removed (Q4_2, Q4_3, the repacked Q4_0_x_y and
        /// IQ4_NL_x_y) and unknown ids are errors of [`GgmlType::from_id`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[allow(non_camel_case_types)]
        pub enum GgmlType {
            $($(#[$doc])* $variant = $id,)*
        }

        impl GgmlType {
            /// Every type, by id.
            pub const ALL: &'static [GgmlType] = &[$(GgmlType::$variant,)*];

            /// The type of id `id` as a file stores it: an error naming the id when ggml
            /// defines no such type (or removed it).
            pub fn from_id(id: u32) -> Result<Self> {
                match id {
                    $($id => Ok(GgmlType::$variant),)*
                    _ => Err(Error::Gguf(match removed(id) {
                        Some(name) => format!("tensor type {name} (id {id}) was removed from ggml: no GGUF reader takes it"),
                        None => format!("unknown tensor type id {id}"),
                    })),
                }
            }

            /// gguf-py's name of the type: "F32", "Q4_1", "IQ2_XXS", "BF16".
            pub fn name(self) -> &'static str {
                match self {
                    $(GgmlType::$variant => $name,)*
                }
            }

            /// Elements per block (1 for the plain types F32, F16, BF16, I8...).
            pub fn block_elems(self) -> u64 {
                match self {
                    $(GgmlType::$variant => $elems,)*
                }
            }

            /// Bytes per block.
            pub fn block_bytes(self) -> u64 {
                match self {
                    $(GgmlType::$variant => $bytes,)*
                }
            }
        }
    };
}

ggml_types! {
    F32 = 0, "F32", 1, 4;
    F16 = 1, "F16", 1, 2;
    /// d (f16), 32 4-bit quants.
    Q4_0 = 2, "Q4_0", 32, 2 + 16;
    /// d, m (f16), 32 4-bit quants.
    Q4_1 = 3, "Q4_1", 32, 2 + 2 + 16;
    Q5_0 = 6, "Q5_0", 32, 2 + 4 + 16;
    Q5_1 = 7, "Q5_1", 32, 2 + 2 + 4 + 16;
    /// d (f16), 32 i8 quants.
    Q8_0 = 8, "Q8_0", 32, 2 + 32;
    Q8_1 = 9, "Q8_1", 32, 2 + 2 + 32;
    Q2_K = 10, "Q2_K", QK_K, 2 + 2 + QK_K / 16 + QK_K / 4;
    Q3_K = 11, "Q3_K", QK_K, 2 + QK_K / 4 + QK_K / 8 + 12;
    Q4_K = 12, "Q4_K", QK_K, 2 + 2 + QK_K / 2 + 12;
    Q5_K = 13, "Q5_K", QK_K, 2 + 2 + QK_K / 2 + QK_K / 8 + 12;
    Q6_K = 14, "Q6_K", QK_K, 2 + QK_K / 2 + QK_K / 4 + QK_K / 16;
    Q8_K = 15, "Q8_K", QK_K, 4 + QK_K + QK_K / 8;
    IQ2_XXS = 16, "IQ2_XXS", QK_K, 2 + QK_K / 4;
    IQ2_XS = 17, "IQ2_XS", QK_K, 2 + QK_K / 4 + QK_K / 32;
    IQ3_XXS = 18, "IQ3_XXS", QK_K, 2 + QK_K / 4 + QK_K / 8;
    IQ1_S = 19, "IQ1_S", QK_K, 2 + QK_K / 8 + QK_K / 16;
    IQ4_NL = 20, "IQ4_NL", 32, 2 + 16;
    IQ3_S = 21, "IQ3_S", QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4;
    IQ2_S = 22, "IQ2_S", QK_K, 2 + QK_K / 4 + QK_K / 16;
    IQ4_XS = 23, "IQ4_XS", QK_K, 2 + 2 + QK_K / 2 + QK_K / 64;
    I8 = 24, "I8", 1, 1;
    I16 = 25, "I16", 1, 2;
    I32 = 26, "I32", 1, 4;
    I64 = 27, "I64", 1, 8;
    F64 = 28, "F64", 1, 8;
    IQ1_M = 29, "IQ1_M", QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32;
    BF16 = 30, "BF16", 1, 2;
    TQ1_0 = 34, "TQ1_0", QK_K, 2 + 4 * 13;
    TQ2_0 = 35, "TQ2_0", QK_K, 2 + 64;
    MXFP4 = 39, "MXFP4", 32, 1 + 16;
    NVFP4 = 40, "NVFP4", 64, 4 + 32;
    Q1_0 = 41, "Q1_0", 128, 2 + 16;
    Q2_0 = 42, "Q2_0", 64, 2 + 16;
}

/// The ids ggml once gave a type and took back.
fn removed(id: u32) -> Option<&'static str> {
    Some(match id {
        4 => "Q4_2",
        5 => "Q4_3",
        31 => "Q4_0_4_4",
        32 => "Q4_0_4_8",
        33 => "Q4_0_8_8",
        36 => "IQ4_NL_4_4",
        37 => "IQ4_NL_4_8",
        38 => "IQ4_NL_8_8",
        _ => return None,
    })
}

impl GgmlType {
    /// The id the file stores.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// Whether a block holds more than one element (the quantized types).
    pub fn is_quantized(self) -> bool {
        self.block_elems() > 1
    }

    /// The type named `name` (gguf-py's spelling, any case): "q4_1", "Q8_0", "BF16".
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| t.name().eq_ignore_ascii_case(name))
    }

    /// The bytes of `elements` elements of this type, or `None` when `elements` is not a
    /// whole number of blocks or the size does not fit a u64.
    pub fn bytes_for(self, elements: u64) -> Option<u64> {
        if !elements.is_multiple_of(self.block_elems()) {
            return None;
        }
        (elements / self.block_elems()).checked_mul(self.block_bytes())
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
