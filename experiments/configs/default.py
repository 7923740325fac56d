r"""Default DeepSynth configuration: the method's model at its best Table 1 setting.

Dropout 0.75 on the audio input, 10 dilated layers, 512 residual features, 100 epochs with
validation on 100 examples after each and the best epoch kept. This is a GPU/TPU-sized run:

  python -m deepsynth_jax.train --config=experiments/configs/default.py --workdir=runs/default

Variants import this file and override fields (see cpu.py, table1.py, test.py); any field can be
set on the command line, e.g. `--config.num_epochs=3`.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  # Dataset folder built by `python -m data_gen.make_dataset --out_dir=...`.
  config.data_dir = "data/deepsynth"
  # Other renderings of the same songs (built with --frames=fps:N) mixed into training, a batch
  # at a time (deepsynth_jax.renderings): a model that learns from them plays from camera video
  # as well as from press frames. Validation cycles through all of them.
  config.extra_data_dirs = ()
  # Probability that a training example's frames are seen through a randomly drawn camera
  # (resolution, brightness/contrast, noise, blur, small shift/rotation/perspective;
  # data_gen.camera.TRAINING_RANGES), seeded by (seed, epoch, example).
  config.camera_augment = 0.0
  # Every random choice (init, dropout, shuffling, crops) derives from this seed.
  config.seed = 0
  # Which model (deepsynth_jax.models.REGISTRY): "wavenet" (autoregressive, the method) or
  # "keysynth" (a key reader playing a learned additive instrument, a whole clip in one pass).
  config.model = "wavenet"
  # Audio quantization into 256 buckets: "mu_law" or "linear".
  config.quantization = "mu_law"

  config.wavenet = ml_collections.ConfigDict()
  # Number of dilated causal layers; dilation doubles each layer within a stack.
  config.wavenet.num_layers = 10
  # Layers per stack before the dilation restarts at 1 (== num_layers for a single stack).
  config.wavenet.layers_per_stack = 10
  # Residual channels C (the gate has 2C).
  config.wavenet.channels = 512
  # Skip-connection channels.
  config.wavenet.skip_channels = 512
  # Probability of replacing each teacher-forced audio input by "no audio" (training only).
  config.wavenet.audio_dropout = 0.75
  # Precision of the WaveNet's matrix products (models/precision.py): "float32", or "bfloat16"
  # (operands rounded to bfloat16, float32 sums, parameters and activations: what TPUs do with
  # float32 products by default; 1.3-1.8x faster training on a CPU with AMX, README "Speed").
  config.wavenet.dtype = "float32"
  # Training's forward and backward window by window (models/windowed_gradient.py): each clip
  # in windows of this many samples plus the receptive field's halo, one window after another,
  # so that a window's activations stay in a CPU core's cache; the same loss and gradient to
  # float rounding. 0 = the whole batch at once (for accelerators). On 2 cores of an Intel Xeon
  # presented as 2 devices (train's --cpu_devices=0), 1000 made the 7 x 128 WaveNet's bfloat16
  # step 1.6x as fast and its float32 step 1.03-1.06x (README "Speed").
  config.wavenet.train_window = 0

  config.keysynth = ml_collections.ConfigDict()
  # KeySynth (model="keysynth") reads the keys off each frame with its own small
  # key reader and plays them on a learned harmonic instrument; the encoder and conditioning
  # fields below are the WaveNet's (it uses only conditioning.num_age_features).
  # Key reader: "placed" reads key k where a piano has it (learning only where the keyboard lies
  # in the image, so audio alone can teach it); "columns" maps all image columns to the 88 keys
  # with a dense layer (it must learn which columns are which key: key labels teach that).
  config.keysynth.reader = "placed"
  # The placed reader's column features: "conv" (VGG-like 3x3 stages, key_channels per stage) or
  # "rows" (a width-3 convolution along the columns with a column's pixels as its channels,
  # key_channels per stage: ~15x fewer FLOPs; experiments/distill.py).
  config.keysynth.reader_trunk = "conv"
  # Channels of the reader's conv stages and hidden units of its per-column layers.
  config.keysynth.key_channels = (8, 16, 16)
  config.keysynth.key_hidden = 32
  # Instrument: MLP shared by the 88 keys, from (key age, pitch, held, re-strike cue) to the
  # amplitudes of its harmonics.
  config.keysynth.envelope_hidden = 64
  config.keysynth.envelope_layers = 2
  config.keysynth.num_harmonics = 6
  # Loss weights: waveform L1, multi-resolution STFT, bucket CE, and the key reader's
  # cross-entropy against the key states the simulator drew (0 = learn the keys from audio alone).
  config.keysynth.l1_weight = 1.0
  config.keysynth.stft_weight = 1.0
  config.keysynth.ce_weight = 0.0
  # Both 0 / False: no key labels, the model learns from (frames, audio) pairs alone.
  config.keysynth.key_weight = 0.0
  # Train the instrument on the drawn key states (the reader's are used in evaluation and
  # generation); False plays the reader's in training too (needed with key_weight = 0).
  config.keysynth.teacher_forced_keys = False
  # Weight of the audio teacher: the reader's "newly pressed" probabilities trained towards the
  # keys the reference audio says were struck at each frame's start (deepsynth_jax.audio_teacher;
  # no key labels). 0 = the audio loss alone teaches the reader.
  config.keysynth.heard_weight = 1.0
  # Generate (and validate) with the reader's key states rounded (p > 0.5) when tracking press
  # times (models/keysynth.py: press_kept): without it a held key's press time creeps towards
  # every new frame of camera video and released keys click at every frame. Training stays soft.
  config.keysynth.hard_held = False
  # Generate (and validate) with the instrument MLP on the `max_voices` most-pressed keys at each
  # control point only (0 = all 88; training always plays all 88). At most 10 keys are down at
  # once in the 20 songs; 16 voices make the MLP 5.5x cheaper (experiments/bench_sampler.py).
  config.keysynth.max_voices = 16
  # Generate (and validate) with a released key's sound fading by e every `release_ms` ms
  # (models/keysynth.py: release_envelope) instead of stopping within one 4 ms control block,
  # whose click an onset detector takes for a note (0 = the cut). Training never fades.
  config.keysynth.release_ms = 20.0
  # Generate (and validate) with the instrument's control points this many samples apart (0 =
  # training's 16, 4 ms): amplitudes interpolated over longer blocks, fewer MLP evaluations and
  # passes over the partials per second of audio (models/keysynth.py: KeySynth.hop).
  config.keysynth.generation_hop = 0
  # FFT sizes (samples) of the multi-resolution STFT loss.
  config.keysynth.stft_sizes = (64, 128, 256, 512)
  # Note-relative oscillator phases for audio whose notes start on a grid of this many samples
  # after the press (16 for the simulator: FluidSynth's 64-frame blocks at its 16 kHz render);
  # each partial learns its phase at the note's start and its detuning, so the waveform L1 can
  # teach them. 0: phases fixed by absolute time. Needs crop_align a multiple of it.
  config.keysynth.onset_grid = 0

  config.encoder = ml_collections.ConfigDict()
  # Output channels of each VGG block (each block ends in a 2x2 max-pool).
  config.encoder.channels = (32, 64, 128)
  # 3x3 convolutions per block.
  config.encoder.convs_per_block = 2
  # Frame feature size.
  config.encoder.features = 256
  # Average-pool frames by this factor before the first convolution (2 for CPU runs).
  config.encoder.input_pool = 1

  config.conditioning = ml_collections.ConfigDict()
  # False trains an audio-only WaveNet (no frames, no frame timing): the ablation's baseline.
  config.conditioning.use_video = True
  # Per-frame conditioning size (fed to every layer's gate).
  config.conditioning.features = 256
  # Condition on the previous frame's features as well as the current one's.
  config.conditioning.use_previous_frame = True
  # Add features of the time since the current frame began (where we are in a note's decay).
  config.conditioning.use_frame_age = True
  # Number of frame-age features (exponential decays from 2.5 ms to 4 s).
  config.conditioning.num_age_features = 8

  # The vocoder (model="vocoder"): the wavenet section's WaveNet conditioned per sample on the audio
  # of a frozen, trained KeySynth (deepsynth_jax.models.vocoder): video -> KeySynth -> WaveNet.
  config.vocoder = ml_collections.ConfigDict()
  # Run directory of the trained KeySynth; its best parameters are copied into the vocoder's.
  config.vocoder.keysynth_run = "models/demo_keysynth"
  # Conv layers over the KeySynth audio making the per-sample features (0 = the audio itself).
  config.vocoder.cond_layers = 2
  # Channels D of those layers: the per-sample features fed to every layer's gate.
  config.vocoder.cond_channels = 32
  # Their kernel in samples (odd, centred: non-causal, the clip's KeySynth audio is known).
  config.vocoder.cond_kernel = 9
  # Also read the frames with the WaveNet's own frame encoder (encoder, conditioning sections).
  config.vocoder.frame_encoder = False
  # Voices of the frozen KeySynth (its keysynth.max_voices; 0 = all 88 keys), fixed here so that
  # the vocoder hears the KeySynth it was trained on whatever that run's record says.
  config.vocoder.keysynth_max_voices = 0
  # Likewise its release (keysynth.release_ms; 0 = the cut the shipped vocoder was trained on).
  config.vocoder.keysynth_release_ms = 0.0
  # The WaveNet's distribution: False = 256 free logits (the method's head); True = a Gaussian
  # over the buckets around the anchor (KeySynth audio + a learned correction), its width from the
  # per-sample features (models/wavenet.py, `anchored_output`). Its mean: "gain" = gain x anchor,
  # the gain from the WaveNet stack held over anchor_block samples; "residual" = anchor + width x
  # the stack's per-sample residual.
  config.vocoder.anchored = False
  config.vocoder.anchor_mean = "gain"
  # False: the anchor is the KeySynth audio itself, with no learned correction.
  config.vocoder.anchor_correction = True
  config.vocoder.anchor_block = 64
  # Scheduled sampling: this fraction of each batch's examples is fed the model's own greedy
  # samples as its past audio in training (scored against the recording), not the recording.
  config.vocoder.own_samples = 0.0
  # > 0: the anchored head's gain is trained on the block loudness it gives (this weight x the
  # squared log-ratio of levels), not through the logits (wavenet.anchored_level_loss).
  config.vocoder.level_loss = 0.0

  # Global batch size (examples per step over all devices and hosts).
  config.batch_size = 8
  # Training crop of each 5 s segment, in samples (0 = the whole segment).
  config.crop_samples = 8000
  # Crops start at a multiple of this many samples of their segment (segments start every 3 s,
  # a multiple of any grid that divides 12,000 samples): what keysynth.onset_grid needs.
  config.crop_align = 1
  # A run directory whose best parameters start this training (fine-tuning): every parameter
  # with the same path and shape is copied, the others start fresh ("" = all fresh).
  config.init_from = ""
  # Training length in epochs over the train split.
  config.num_epochs = 100
  # Stop after this many steps if > 0 (overrides num_epochs for quick runs and tests).
  config.max_steps = 0

  config.optimizer = ml_collections.ConfigDict()
  # "adamw" or "adam".
  config.optimizer.name = "adamw"
  # Peak learning rate after warm-up.
  config.optimizer.learning_rate = 3e-4
  # Linear warm-up steps from 0 to the peak.
  config.optimizer.warmup_steps = 500
  # Annealing after warm-up: "cosine" (to end_factor * peak at the last step) or "exponential".
  config.optimizer.schedule = "cosine"
  # Final learning rate as a fraction of the peak.
  config.optimizer.end_factor = 0.01
  # For "exponential": decay rate per `decay_steps` steps.
  config.optimizer.decay_rate = 0.5
  config.optimizer.decay_steps = 10_000
  # Decoupled weight decay (adamw only).
  config.optimizer.weight_decay = 0.0
  # Clip gradients to this global norm (0 = no clipping).
  config.optimizer.grad_clip_norm = 1.0

  config.eval = ml_collections.ConfigDict()
  # Validation examples evaluated after every epoch (the method: 100).
  config.eval.num_examples = 100
  # Validation batch size (global).
  config.eval.batch_size = 20
  # Loss that selects the best epoch: "teacher_forced" or "free_running".
  config.eval.selection_metric = "free_running"
  # Samples generated per example for the free-running loss (0 = the whole segment).
  config.eval.free_running_samples = 0
  # Its sampling temperature (the method's: 1; 0 = greedy, as a model played greedily is heard).
  config.eval.free_running_temperature = 1.0

  # Log metrics every N steps (metrics stay on the device in between).
  config.log_every_steps = 50
  # Save the latest state for resume every N steps (and at every epoch end).
  config.checkpoint_every_steps = 500
  # Host-side batches prepared ahead of the device.
  config.prefetch_batches = 2
  return config


def continued(config: ml_collections.ConfigDict, run: str, epochs: int, *,
              warmup_steps: int = 10) -> ml_collections.ConfigDict:
  """`config` set to continue the run directory `run` from its best parameters (`init_from`) for
  `epochs` more epochs at learning rate 1e-3 (`warmup_steps` warm-up steps): a second stage."""
  config.init_from = run
  config.num_epochs = epochs
  config.optimizer.learning_rate = 1e-3
  config.optimizer.warmup_steps = warmup_steps
  return config
