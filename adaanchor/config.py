"""``add_adaanchor_config(cfg)``: every config key AdaAnchor adds to Detectron2's, with its default.

Composable like Detectron2's projects: ``add_anchor_config`` (the criterion shared by every host:
MODEL.ADAANCHOR and MODEL.HEATMAP_ANCHOR), ``add_bottom_up_input_config``, ``add_dekr_config``, ``add_ae_config``,
``add_roi_keypoint_head_config``, ``add_hrnet_config``, ``add_synthetic_data_config`` and ``add_solver_config``; ``add_adaanchor_config`` adds
them all. Each key has one owner: a host's own quantities (DEKR's centre sigma, its offset region, its
keypoint heatmaps) live under the host's node, never under the criterion's.

Lengths are in feature-map px unless a key's comment says otherwise. The single switch between AdaAnchor
and its heatmap-anchor baseline is ``MODEL.ADAANCHOR.ENABLED``; everything else stays equal.
"""

from adaanchor.utils.dependencies import require_detectron2

require_detectron2("adaanchor.config")

from detectron2.config import CfgNode as CN  # noqa: E402


def add_adaanchor_config(cfg: CN) -> CN:
    """Add AdaAnchor's keys to a Detectron2 config in place (and return it, for chaining)."""
    add_anchor_config(cfg)
    add_synthetic_data_config(cfg)
    add_bottom_up_input_config(cfg)
    add_dekr_config(cfg)
    add_ae_config(cfg)
    add_roi_keypoint_head_config(cfg)
    add_solver_config(cfg)
    add_hrnet_config(cfg)
    return cfg


def add_anchor_config(cfg: CN) -> None:
    """MODEL.ADAANCHOR (the method, paper section 3, and its ablations) and MODEL.HEATMAP_ANCHOR (the
    baseline): the anchor criterion every host builds with ``adaanchor.anchor.build_anchor_criterion``."""
    cfg.MODEL.ADAANCHOR = CN()
    # True: adaptive anchors (the paper). False: the host method's heatmap-anchor baseline.
    cfg.MODEL.ADAANCHOR.ENABLED = True
    # Positives per target: the top-k candidates by anchor score (paper eq. 11, k = 20; 1 = "w/o multiple anchors").
    cfg.MODEL.ADAANCHOR.TOPK = 20
    # Which cells become a target's positives: "adaptive" (top-k by anchor score, the paper); "nearest" (the
    # FixAnchor baseline of the paper's Table 1: the k cells nearest the target, everything else as AdaAnchor);
    # "regression" (the regression-anchor baseline: one fixed anchor per batch item, the map centre, whose offset
    # is the spatial mean of the offset maps - direct coordinate regression, no confidence; only for hosts with
    # one target per type, the ROI keypoint head).
    cfg.MODEL.ADAANCHOR.SELECTION = "adaptive"
    # Regression score kernel: "gaussian" exp(-d^2 / 2 sigma^2) (paper eq. 8) or "laplacian" exp(-|d|_1 / b) (SAR).
    cfg.MODEL.ADAANCHOR.KERNEL = "gaussian"
    # Kernel width: sigma of the Gaussian or b of the Laplacian, feature-map px (paper: sigma = 4).
    cfg.MODEL.ADAANCHOR.KERNEL_WIDTH = 4.0
    # Fusion of confidence c and regression score r into the anchor score: "mul" (c * r, paper) or "add" (c + r).
    cfg.MODEL.ADAANCHOR.FUSION = "mul"
    # Local refinement (paper eq. 12): a short-range offset map sampled at anchor + coarse offset.
    cfg.MODEL.ADAANCHOR.LOCAL_REFINEMENT = True
    # Locations within this radius of a target train the local offset, feature-map px.
    cfg.MODEL.ADAANCHOR.LOCAL_RADIUS = 2.0
    # Labelled targets outside the input (truncated by augmentation) stay targets up to this far out, feature-map px.
    cfg.MODEL.ADAANCHOR.TARGET_MARGIN = 8.0
    # Sigmoid focal loss on the confidence (Lin et al.): alpha < 0 disables the class balance term.
    cfg.MODEL.ADAANCHOR.FOCAL_ALPHA = 0.25
    cfg.MODEL.ADAANCHOR.FOCAL_GAMMA = 2.0
    # Initial confidence of every candidate (bias of the confidence logits).
    cfg.MODEL.ADAANCHOR.PRIOR_PROB = 0.01
    # Loss weights. A host method with small losses of its own needs them scaled down to its scale:
    # Base-DEKR.yaml uses 0.01 / 0.001 / 0.001 (see its comment).
    cfg.MODEL.ADAANCHOR.CONFIDENCE_LOSS_WEIGHT = 1.0
    # lambda of paper eq. 4: L1 on the coarse offsets of positives.
    cfg.MODEL.ADAANCHOR.OFFSET_LOSS_WEIGHT = 1.0
    cfg.MODEL.ADAANCHOR.LOCAL_OFFSET_LOSS_WEIGHT = 1.0
    # (target, candidate) pairs scored at once in the assignment: bounds its memory on crowded images
    # (a few MiB per 256K pairs); the result is the same for any value.
    cfg.MODEL.ADAANCHOR.ASSIGNMENT_CHUNK_SIZE = 262144
    cfg.MODEL.ADAANCHOR.TEST = CN()
    # gamma: candidates with confidence >= this are kept (paper: 0.01 for DEKR, 0.1 for AE).
    cfg.MODEL.ADAANCHOR.TEST.CONFIDENCE_THRESHOLD = 0.01
    # Duplicates (anchors of one target) are merged when their predicted positions are this close, feature-map px.
    cfg.MODEL.ADAANCHOR.TEST.MERGE_RADIUS = 2.0
    # m: at most this many targets per keypoint type (or persons, for centers) per image after merging.
    cfg.MODEL.ADAANCHOR.TEST.MAX_DETECTIONS = 30

    # The heatmap-anchor baseline, used when MODEL.ADAANCHOR.ENABLED is False. Its Gaussian sigma is the
    # host's (a centre sigma is not a keypoint sigma): MODEL.DEKR.CENTER_SIGMA for DEKR's centres.
    cfg.MODEL.HEATMAP_ANCHOR = CN()
    # Loss weight of background pixels (target 0) relative to foreground (DEKR: 0.1).
    cfg.MODEL.HEATMAP_ANCHOR.BACKGROUND_WEIGHT = 0.1
    cfg.MODEL.HEATMAP_ANCHOR.LOSS_WEIGHT = 1.0
    # Peak extraction: max-pool window (odd, feature-map px) and score threshold.
    cfg.MODEL.HEATMAP_ANCHOR.NMS_KERNEL = 5
    cfg.MODEL.HEATMAP_ANCHOR.TEST_THRESHOLD = 0.01
    # At most this many peaks per map (DEKR: 30 person centres).
    cfg.MODEL.HEATMAP_ANCHOR.TEST_MAX_DETECTIONS = 30


def add_synthetic_data_config(cfg: CN) -> None:
    """DATASETS.SYNTHETIC: the embedded synthetic crowd dataset, generated on first use."""
    cfg.DATASETS.SYNTHETIC = CN()
    # Where generated copies are cached; "" = $ADAANCHOR_CACHE or ~/.cache/adaanchor.
    cfg.DATASETS.SYNTHETIC.CACHE_DIR = ""


def add_dekr_config(cfg: CN) -> None:
    """MODEL.DEKR: the single-stage DEKR meta-architecture (Geng et al., CVPR'21).

    The person centre is one anchor type of the shared criterion: AdaAnchor (MODEL.ADAANCHOR, ENABLED True) or
    DEKR's centre heatmap (MODEL.HEATMAP_ANCHOR, with the centre sigma MODEL.DEKR.CENTER_SIGMA).
    """
    cfg.MODEL.DEKR = CN()
    # Backbone output the heads read (one stride-4 map).
    cfg.MODEL.DEKR.IN_FEATURE = "hrnet_cat"
    cfg.MODEL.DEKR.NUM_KEYPOINTS = 14
    # Heatmap head (keypoint heatmaps + centre channels): channels of its residual block.
    cfg.MODEL.DEKR.HEATMAP_HEAD_CHANNELS = 32
    # Disentangled offset head: channels per keypoint, number of blocks, "adaptive" (deformable) or "plain".
    cfg.MODEL.DEKR.OFFSET_CHANNELS_PER_KEYPOINT = 15
    cfg.MODEL.DEKR.OFFSET_NUM_BLOCKS = 2
    cfg.MODEL.DEKR.OFFSET_BLOCK = "adaptive"
    cfg.MODEL.DEKR.NORM = "BN"
    # Keypoint heatmaps (trained in both variants, used to score poses): Gaussian sigma, feature-map px, and
    # the loss weight of background pixels relative to foreground (DEKR's BG_WEIGHT).
    cfg.MODEL.DEKR.KEYPOINT_SIGMA = 2.0
    cfg.MODEL.DEKR.KEYPOINT_BACKGROUND_WEIGHT = 0.1
    # Centre heatmap of the heatmap-anchor baseline: Gaussian sigma, feature-map px (DEKR: 4). DEKR's code picks
    # the centre sigma only for channel index >= 17, so on CrowdPose (14 keypoints) its centre silently gets
    # the keypoint sigma; here the configured centre sigma applies on every dataset.
    cfg.MODEL.DEKR.CENTER_SIGMA = 4.0
    # Heatmap-anchor baseline: cells within this Chebyshev radius of a centre regress the offsets, feature-map px.
    cfg.MODEL.DEKR.OFFSET_RADIUS = 4.0
    # People smaller than this get no centre (DEKR: 32^2 on COCO), input px^2.
    cfg.MODEL.DEKR.MIN_PERSON_AREA = 0.0
    cfg.MODEL.DEKR.HEATMAP_LOSS_WEIGHT = 1.0
    # Smooth-L1 offset loss weight (DEKR: 0.03, with the 1 / person-scale weight per person).
    cfg.MODEL.DEKR.OFFSET_LOSS_WEIGHT = 0.03
    cfg.MODEL.DEKR.TEST = CN()
    # Pose NMS: duplicates have at least MIN_JOINTS joints closer than DISTANCE_RATIO x the pose diagonal.
    cfg.MODEL.DEKR.TEST.NMS_DISTANCE_RATIO = 0.05
    cfg.MODEL.DEKR.TEST.NMS_MIN_JOINTS = 8
    cfg.MODEL.DEKR.TEST.FLIP = False
    # Input px; > 0 moves each regressed joint onto the nearest peak of its keypoint heatmap within this
    # distance (DEKR's TEST.MATCH_HMP, without its Gaussian fit). 0 = off, DEKR's single-scale protocol.
    cfg.MODEL.DEKR.TEST.ABSORB_DISTANCE = 0.0
    # Left shift of the flipped input, input px; -1 = stride - 1 (see adaanchor.bottom_up.shift_flipped_image).
    cfg.MODEL.DEKR.TEST.FLIP_SHIFT = -1
    # Multi-scale test: input scale factors relative to the test size; poses of all scales meet in pose NMS.
    cfg.MODEL.DEKR.TEST.SCALES = (1.0,)


def add_ae_config(cfg: CN) -> None:
    """MODEL.AE: bottom-up Associative Embedding (Newell et al.; HigherHRNet's set-up) with AdaAnchor keypoints."""
    cfg.MODEL.AE = CN()
    # Backbone output the head reads: HRNet's stride-4 branch, as HigherHRNet (without its deconvolution).
    cfg.MODEL.AE.IN_FEATURE = "hr2"
    cfg.MODEL.AE.NUM_KEYPOINTS = 14
    cfg.MODEL.AE.HEAD_CHANNELS = 32
    cfg.MODEL.AE.NORM = "BN"
    # Heatmap-anchor baseline: the keypoint Gaussian sigma, feature-map px (HigherHRNet: 2).
    cfg.MODEL.AE.KEYPOINT_SIGMA = 2.0
    # Where tags are trained and read: "anchor" (AdaAnchor: at the selected anchors in training, at the detection's
    # anchor in inference; the heatmap anchor has no anchors and keeps AE's rule) or "keypoint" (AE: at the
    # ground-truth keypoint; read at the predicted one). "anchor" measured ahead on the synthetic AE configs under
    # both push losses (projects/AdaAnchor/README.md), though at AP levels near noise.
    cfg.MODEL.AE.TAG_POSITION = "anchor"
    # Pull / push loss weights (HigherHRNet: 0.001 each).
    cfg.MODEL.AE.PULL_LOSS_WEIGHT = 0.001
    cfg.MODEL.AE.PUSH_LOSS_WEIGHT = 0.001
    # Push loss per pair of people: "exp" (exp(-d^2), HigherHRNet's default) or "max" (max(0, 1 - |d|)),
    # HigherHRNet's AE_LOSS_TYPE (adaanchor/bottom_up/tags.py).
    cfg.MODEL.AE.PUSH_LOSS_TYPE = "exp"
    cfg.MODEL.AE.TEST = CN()
    # Grouping: candidates scoring below DETECTION_THRESHOLD take no part; a candidate joins a person when its
    # tag is closer than TAG_THRESHOLD to the person's mean tag (AE: 0.1 and 1).
    cfg.MODEL.AE.TEST.DETECTION_THRESHOLD = 0.1
    cfg.MODEL.AE.TEST.TAG_THRESHOLD = 1.0
    cfg.MODEL.AE.TEST.FLIP = False
    cfg.MODEL.AE.TEST.SCALES = (1.0,)
    # AE's missing-joint refinement over the decoded candidates (the paper removes it for a fair comparison).
    cfg.MODEL.AE.TEST.REFINE = False
    # The paper's protocol ("a pretrained Associative Embedding model to tag each predicted keypoint"): a trained
    # AE checkpoint whose tag maps, read at the predicted keypoints, group this model's keypoints, so that grouping
    # is the same for both anchors. TAGGER_CONFIG: its config file ("" = this config with MODEL.ADAANCHOR.ENABLED
    # False, the heatmap-anchor twin). "" weights: the model's own tags.
    cfg.MODEL.AE.TEST.TAGGER_WEIGHTS = ""
    cfg.MODEL.AE.TEST.TAGGER_CONFIG = ""
    # An oracle tagger for localisation studies (e.g. where no trained tagger exists, as on the CPU benchmark):
    # each candidate's tag is the index of the ground-truth person whose labelled keypoint of its type is nearest
    # (the test loader keeps the annotations); grouping is then the same for every model.
    cfg.MODEL.AE.TEST.GROUND_TRUTH_TAGS = False


def add_roi_keypoint_head_config(cfg: CN) -> None:
    """MODEL.ROI_KEYPOINT_HEAD (Detectron2's node): what AdaAnchor's ROI keypoint head adds
    (MODEL.ROI_KEYPOINT_HEAD.NAME "build_anchor_keypoint_head"; the anchor criterion is MODEL.ADAANCHOR), and
    MODEL.KEYPOINT_RCNN, the ground-truth-box protocol of the KeypointRCNN meta-architecture."""
    # Bilinear upsampling of the anchor maps after the stride-2 deconvolution (Detectron2's heatmaps: x2, to 56 x 56;
    # AdaAnchor's offsets make it unnecessary: 1 keeps the 28 x 28 maps of a 14 x 14 pool).
    cfg.MODEL.ROI_KEYPOINT_HEAD.UPSAMPLE_FACTOR = 1
    # The paper's single-keypoint protocol for MODEL.META_ARCHITECTURE "KeypointRCNN"
    # (adaanchor.modeling.roi_heads.meta_arch): keypoints on the ground-truth person boxes.
    cfg.MODEL.KEYPOINT_RCNN = CN()
    # Train the backbone and keypoint head on ground-truth boxes only (RPN and box head frozen and bypassed).
    cfg.MODEL.KEYPOINT_RCNN.TRAIN_ON_GT_BOXES = False
    # Test on ground-truth boxes (box score 1; person score = mean keypoint score) instead of detections.
    cfg.MODEL.KEYPOINT_RCNN.TEST_ON_GT_BOXES = False


def add_bottom_up_input_config(cfg: CN) -> None:
    """INPUT.DATASET_MAPPER_NAME and INPUT.BOTTOM_UP: the dataset mapper and the bottom-up training
    augmentation (HigherHRNet / DEKR; paper appendix A.3)."""
    # "bottom_up": whole images with all their people (adaanchor.data.BottomUpDatasetMapper; DEKR, AE);
    # "detectron2": Detectron2's DatasetMapper (ROI heads).
    cfg.INPUT.DATASET_MAPPER_NAME = "detectron2"
    cfg.INPUT.BOTTOM_UP = CN()
    # Side of the square training input, input px.
    cfg.INPUT.BOTTOM_UP.SIZE = 512
    # Random zoom range; 1 fits the image's short side to SIZE (as the test-time short-side resize does).
    cfg.INPUT.BOTTOM_UP.SCALE_RANGE = (0.75, 1.5)
    # Uniform rotation in [-MAX_ROTATION, MAX_ROTATION] degrees.
    cfg.INPUT.BOTTOM_UP.MAX_ROTATION = 30.0
    # Uniform shift in [-MAX_TRANSLATION, MAX_TRANSLATION] input px per axis.
    cfg.INPUT.BOTTOM_UP.MAX_TRANSLATION = 40.0
    cfg.INPUT.BOTTOM_UP.FLIP_PROB = 0.5


def add_solver_config(cfg: CN) -> None:
    """SOLVER.OPTIMIZER: Detectron2's default trainer builds SGD only; the papers train with Adam."""
    cfg.SOLVER.OPTIMIZER = "SGD"  # "SGD" or "ADAM" (ADAM uses BASE_LR, WEIGHT_DECAY; BETAS below)
    cfg.SOLVER.ADAM_BETAS = (0.9, 0.999)


def add_hrnet_config(cfg: CN) -> None:
    """MODEL.HRNET: the HRNet backbone (MODEL.BACKBONE.NAME = "build_hrnet_backbone"); defaults = HRNet-W32.

    Official variants (adaanchor.modeling.backbone.HRNET_PRESETS; ImageNet weights exist for each):
    w32 (default), w48 (WIDTH 48), w18 (WIDTH 18), w18_small_v2 (WIDTH 18, STAGE1_BLOCKS 2,
    NUM_MODULES [1, 3, 2], NUM_BLOCKS [2, 2, 2]), w18_small_v1 (WIDTH 16, STAGE1_CHANNELS 32, STAGE1_BLOCKS 1,
    NUM_MODULES [1, 1, 1], NUM_BLOCKS [2, 2, 2]).
    """
    cfg.MODEL.HRNET = CN()
    # Channels of the stride-4 branch; branch b (stride 4 * 2**b) has WIDTH * 2**b. "hrnet_cat" has 15 * WIDTH.
    cfg.MODEL.HRNET.WIDTH = 32
    # Stage 1: STAGE1_BLOCKS bottlenecks of width STAGE1_CHANNELS (output 4 * STAGE1_CHANNELS) at stride 4.
    cfg.MODEL.HRNET.STAGE1_CHANNELS = 64
    cfg.MODEL.HRNET.STAGE1_BLOCKS = 4
    # Stages 2, 3, 4: high-resolution modules per stage, basic blocks per branch in each module.
    cfg.MODEL.HRNET.NUM_MODULES = [1, 4, 3]
    cfg.MODEL.HRNET.NUM_BLOCKS = [4, 4, 4]
    # "BN", "SyncBN", "GN" (gcd(32, channels) groups), "FrozenBN" (only with pretrained weights: from
    # scratch it diverges), "" (none).
    cfg.MODEL.HRNET.NORM = "BN"
    # Any of "hr2", "hr3", "hr4", "hr5" (branches, strides 4..32) and "hrnet_cat" (their concat at stride 4).
    cfg.MODEL.HRNET.OUT_FEATURES = ["hrnet_cat"]
    # Local ImageNet checkpoint in the official HRNet naming (e.g. hrnet_w32-36af842e.pth); "" = random init.
    # Those weights expect RGB normalised as torchvision does: INPUT.FORMAT "RGB",
    # MODEL.PIXEL_MEAN [123.675, 116.28, 103.53], MODEL.PIXEL_STD [58.395, 57.12, 57.375].
    cfg.MODEL.HRNET.PRETRAINED = ""
