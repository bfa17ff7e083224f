"""Bark's fixed numbers, in one place (checked against transformers 5.24's Bark source).

Everything that builds model inputs (generation, training layouts, voice prompts)
reads these names; nothing else in models/ spells the numbers out.
"""

# --- audio ---------------------------------------------------------------
SAMPLE_RATE = 24_000            # EnCodec 24 kHz: Bark's output rate
HUBERT_SAMPLE_RATE = 16_000     # HuBERT reads 16 kHz
CODEC_BANDWIDTH = 6.0           # kbps; 8 codebooks. transformers falls back to 1.5 (2 books) if None
CODEC_FRAME_RATE = 75           # EnCodec frames per second (24000 / 320)
N_FINE_CODEBOOKS = 8            # codebooks at 6 kbps
N_COARSE_CODEBOOKS = 2          # codebooks the coarse model predicts
CODEBOOK_SIZE = 1024            # entries per codebook

# --- text / semantic stage --------------------------------------------------
TEXT_ENCODING_OFFSET = 10_048   # BERT ids + this = semantic-model input ids
TEXT_PAD_TOKEN = 129_595        # pads the 256 text positions
MAX_TEXT_TOKENS = 256           # text positions (and semantic-history positions)
MAX_INPUT_SEMANTIC_LENGTH = 256
SEMANTIC_VOCAB_SIZE = 10_000    # real semantic tokens 0..9999
SEMANTIC_PAD_TOKEN = 10_000     # pads the semantic history; also the EOS
SEMANTIC_EOS_TOKEN = 10_000
SEMANTIC_INFER_TOKEN = 129_599  # the 257th input position
SEMANTIC_RATE_HZ = 49.9
SEMANTIC_MAX_NEW_TOKENS = 768   # ~15 s of speech
SEMANTIC_INPUT_VOCAB = 129_600
SEMANTIC_OUTPUT_VOCAB = 10_048

# --- coarse stage -------------------------------------------------------------
COARSE_SEMANTIC_PAD_TOKEN = 12_048
COARSE_INFER_TOKEN = 12_050
MAX_COARSE_INPUT_LENGTH = 256   # semantic positions fed to coarse
MAX_COARSE_HISTORY = 630        # interleaved coarse tokens kept as history
COARSE_SLIDING_WINDOW = 60      # coarse tokens generated per window
COARSE_RATE_HZ = 75
COARSE_VOCAB = 12_096           # in and out
# semantic tokens -> interleaved coarse tokens: 75 / 49.9 * 2 ~= 3.006
SEMANTIC_TO_COARSE_RATIO = COARSE_RATE_HZ / SEMANTIC_RATE_HZ * N_COARSE_CODEBOOKS

# --- fine stage ----------------------------------------------------------------
MAX_FINE_HISTORY = 512          # frames of history in a fine window
MAX_FINE_INPUT = 1024           # frames per fine window (non-causal)
FINE_PAD_TOKEN = 1024           # "not yet predicted" / padding in fine inputs
FINE_VOCAB = 1056               # in and out

# --- suno's sampling defaults (transformers' own default is greedy) ------------
DEFAULT_SEMANTIC_TEMPERATURE = 0.7
DEFAULT_COARSE_TEMPERATURE = 0.7
DEFAULT_FINE_TEMPERATURE = 0.5
DEFAULT_MIN_EOS_P = 0.2

# --- semantic tokens from audio --------------------------------------------------
HUBERT_LAYER = 9                # features from this HuBERT layer (768-d, ~50 Hz)
HUBERT_DIM = 768
QUANTIZER_HIDDEN = 1024         # LSTM hidden size (2 layers)
QUANTIZER_V1_HIDDEN = 4096      # v1's extra Linear 1024 -> 4096

# --- voice prompts -----------------------------------------------------------------
VOICE_MIN_SECONDS = 5.0
VOICE_MAX_SECONDS = 12.0

from models.names import STAGES  # noqa: E402,F401  (defined there; read here with the other fixed facts)
