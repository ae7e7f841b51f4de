"""The real-bug benchmark: buggy training programs from published benchmarks, ported to PyTorch.

Every case is a pair of self-contained model files in ``cases/`` (``<name>_buggy.py``,
``<name>_fixed.py``), each as a user would write it: the ``nn.Module``, ``example_inputs()`` and
``example_targets()`` (a realistic batch of the program's data) and ``train(steps, seed)``,
which builds the program's own loss and optimizer and trains on synthetic data of the original
data's shape and statistics (no dataset can be downloaded here; each file says what it draws).
``train`` returns its losses and a held-out evaluation that ``label.py`` judges.

Sources (Stack Overflow questions in DeepLocalize's Stack Overflow set,
Wardat-ISU/DeepLocalize ``Benchmark/StackOverflow``, are left out wherever they recur: that set
is kept for independent evaluation):

- ``tfb``: TensorFlow-Program-Bugs (Zhang et al., ISSTA 2018), ForeverZyh/TensorFlow-Program-Bugs,
  buggy and fixed program per bug; the benchmark publishes no tool verdicts.
- ``gh``: DeepLocalize's GitHub set (Wardat et al., ICSE 2021), Wardat-ISU/DeepLocalize
  ``Benchmark/GitHub/{Buggy,Correct} Model``; tool verdicts from DeepFD's evaluation
  (ArabelaTso/DeepFD ``Benchmark/Evaluation.xlsx``, sheet Diagnosis, "fault detection":
  UMLAUT, AutoTrainer, DeepLocalize, DeepFD) and DeepLocalize's own output as DeepFD records it
  (``Benchmark/Benchmark-with-patches.xlsx``).
- ``theia``: the Stack Overflow programs of Theia (Manke et al., TOSEM 2024), confanonymous/Theia
  ``SOF/<id>.py``; the repository holds the buggy program and Theia's accuracy before and after
  its repair (``Benchmark/Result.xlsx``), not the patch, so the fix here is ours: the change
  the bug's mechanism calls for, said in ``fix``.
- ``neuralint``: the Stack Overflow programs of NeuraLint (Nikanjam et al., TOSEM 2021),
  neuralint/neuralint ``sample_buggy_scripts/SO Samples/<id>.py`` (buggy only; the fix is ours).
- ``d4ml``: defects4ml (Morovati et al., EMSE 2023), mohmehmo/defects4ml ``bugs/<n>/{buggy,fixed}``;
  no tool verdicts.
- ``deepfd``: DeepFD's benchmark (Cao et al., ICSE 2022), patch and verdicts as above.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bnlint.config import OPTIMIZERS

HERE = Path(__file__).resolve().parent
CASES_DIR = HERE / "cases"
LABELS = HERE / "labels.json"

# The optimizers bnlint's config takes (bnlint.config OPTIMIZERS, every torch.optim optimizer the
# probe can run); the runner passes the program's optimizer when it is one of them.
CONFIGURABLE = OPTIMIZERS


@dataclass(frozen=True)
class Case:
    name: str
    source: str                 # benchmark, repository and path (or question id)
    bug: str                    # what is wrong, in a line
    fix: str                    # what the fixed version changes
    kinds: tuple[str, ...]      # bug kinds (KINDS)
    steps: int                  # training steps for the ground truth, same for both versions
    optimizer: dict             # the buggy program's optimizer: name, lr, momentum (and
                                # any other argument it sets, such as nesterov)
    published: dict[str, str] = field(default_factory=dict)  # tool -> its published verdict
    quick: bool = False         # one of the three cases of --quick
    fixed_optimizer: dict | None = None  # the fixed program's, when the fix changes it

    def optimizer_of(self, version: str) -> dict:
        """The optimizer the ``version`` ("buggy" or "fixed") program trains with."""
        if version == "fixed" and self.fixed_optimizer:
            return self.fixed_optimizer
        return self.optimizer


KINDS = {
    "softmax-1": "softmax over a size-1 output",
    "head-vs-loss": "output activation against the targets or the loss",
    "probs-to-logits-loss": "probabilities passed to a loss that expects logits (or the reverse)",
    "unstable-loss": "a hand-written log loss without clipping (log 0)",
    "input-scale": "unscaled inputs",
    "target-scale": "unscaled regression targets",
    "linear-stack": "no nonlinearity between affine layers",
    "lr-high": "learning rate too high for the optimizer",
    "lr-low": "learning rate too low for the optimizer",
    "init": "weight initialisation",
    "activation": "hidden activation",
    "structure": "layers or widths",
    "target-shape": "targets whose shape broadcasts against the output in the loss",
    "data-order": "training data in class order, so a split holds classes the model never saw",
}

CASES: list[Case] = [
    # TensorFlow-Program-Bugs (Zhang et al., ISSTA 2018): buggy and fixed program per bug
    Case("tfb_39939881",
         "TensorFlow-Program-Bugs StackOverflow/IPS-5 (Stack Overflow 39939881)",
         "linear regression on x in U(-8, 8) by gradient descent at lr 0.1, above 2/curvature",
         "Adam at lr 0.1 (the benchmark's fix)",
         ("lr-high", "input-scale"), 100, {"name": "sgd", "lr": 0.1, "momentum": 0.0},
         quick=True,
         fixed_optimizer={"name": "adam", "lr": 0.1, "momentum": 0.0}),
    Case("tfb_43636736",
         "TensorFlow-Program-Bugs StackOverflow/IPS-15 (Stack Overflow 43636736)",
         "linear regression on unscaled inputs t = 0..99 by gradient descent at lr 0.5",
         "lr 0.0005 (the benchmark's fix)",
         ("lr-high", "input-scale"), 100, {"name": "sgd", "lr": 0.5, "momentum": 0.0},
         fixed_optimizer={"name": "sgd", "lr": 5e-4, "momentum": 0.0}),
    Case("tfb_46577203",
         "TensorFlow-Program-Bugs StackOverflow/IPS-17 (Stack Overflow 46577203)",
         "quadratic fit with a summed squared error by gradient descent at lr 0.01",
         "lr 0.001 (the benchmark's fix)",
         ("lr-high",), 100, {"name": "sgd", "lr": 0.01, "momentum": 0.0},
         fixed_optimizer={"name": "sgd", "lr": 1e-3, "momentum": 0.0}),
    Case("tfb_35078027",
         "TensorFlow-Program-Bugs StackOverflow/IPS-7 (Stack Overflow 35078027)",
         "hand-written binary cross-entropy on the raw linear scores of an MNIST MLP (log of <= 0)",
         "sigmoid on the output, logs clipped, lr 0.05 -> 0.5 (the benchmark's fix)",
         ("probs-to-logits-loss", "unstable-loss", "init"), 200,
         {"name": "sgd", "lr": 0.05, "momentum": 0.0}, quick=True,
         fixed_optimizer={"name": "sgd", "lr": 0.5, "momentum": 0.0}),
    Case("tfb_33641799",
         "TensorFlow-Program-Bugs StackOverflow/IPS-14 (Stack Overflow 33641799)",
         "MNIST softmax regression, cross-entropy -sum(y log p) summed over the batch, SGD lr 0.01",
         "lr 0.005 (the benchmark's fix)",
         ("unstable-loss", "lr-high"), 200, {"name": "sgd", "lr": 0.01, "momentum": 0.0},
         fixed_optimizer={"name": "sgd", "lr": 5e-3, "momentum": 0.0}),
    Case("tfb_ips9_logreg",
         "TensorFlow-Program-Bugs Github/IPS-9 (aymericdamien/TensorFlow-Examples, "
         "logistic_regression.py)",
         "MNIST softmax regression, -sum(y log p) with no guard against log(0), Adam lr 0.005",
         "mean over the batch and log(p + 1e-8) (the benchmark's fix)",
         ("unstable-loss",), 6000, {"name": "adam", "lr": 0.005, "momentum": 0.0}),
    Case("tfb_ips6_logreg",
         "TensorFlow-Program-Bugs Github/IPS-6 (gabrieleangeletti/Deep-Learning-TensorFlow, "
         "logistic_regression.py; defects4ml bug 003)",
         "MNIST softmax regression, unclipped binary cross-entropy of the softmax, Adam lr 0.01",
         "both logs clipped at 1e-10 (the benchmark's fix)",
         ("unstable-loss", "head-vs-loss"), 1000, {"name": "adam", "lr": 0.01, "momentum": 0.0}),
    Case("tfb_43239467",
         "TensorFlow-Program-Bugs StackOverflow/IPS-11 (Stack Overflow 43239467)",
         "MNIST CNN whose logits pass through a ReLU before softmax cross-entropy",
         "no activation on the logits layer (the benchmark's fix)",
         ("head-vs-loss",), 80, {"name": "adam", "lr": 1e-3, "momentum": 0.0}),
    Case("tfb_45002504",
         "TensorFlow-Program-Bugs StackOverflow/IPS-13 (Stack Overflow 45002504)",
         "logistic regression on unscaled heart-disease features, L2 weight 1, SGD lr 0.5",
         "L2 weight 0.1, lr 0.01 (the benchmark's fix)",
         ("lr-high", "input-scale"), 600, {"name": "sgd", "lr": 0.5, "momentum": 0.0},
         fixed_optimizer={"name": "sgd", "lr": 0.01, "momentum": 0.0}),
    Case("tfb_38447935",
         "TensorFlow-Program-Bugs StackOverflow/UT-15 (Stack Overflow 38447935)",
         "(3,) targets minus (3, 1) predictions broadcast to 3 x 3 in the loss",
         "targets expanded to (3, 1) (the benchmark's fix)",
         ("target-shape",), 30000, {"name": "adam", "lr": 1e-4, "momentum": 0.0}),
    Case("tfb_ut1_vae",
         "TensorFlow-Program-Bugs Github/UT-1 (tensorflow/models "
         "autoencoder/VariationalAutoencoderRunner.py)",
         "VAE on MNIST standardised per pixel: rare border pixels reach 100+, exp() overflows",
         "pixels min-max scaled to [0, 1] (the benchmark's fix)",
         ("input-scale",), 600, {"name": "adam", "lr": 1e-3, "momentum": 0.0}),
    # DeepLocalize's GitHub set: buggy and correct program per repository
    Case("gh_facial_keypoints",
         "DeepLocalize GitHub set: ShyamPoovaiah/FacialKeypointsDetection "
         "(src/1_single_hidden_layer.py; defects4ml bug 024)",
         "linear 9216-50-100-30 keypoint regressor trained by Adam at lr 0.1",
         "SGD lr 0.01, Nesterov momentum 0.9, clipnorm 1 (the repository's fix)",
         ("lr-high", "linear-stack"), 300, {"name": "adam", "lr": 0.1, "momentum": 0.0},
         published={"UMLAUT": "detected", "AutoTrainer": "not detected",
                    "DeepLocalize": "detected (MDL, batch 4)", "DeepFD": "detected"},
         fixed_optimizer={"name": "sgd", "lr": 0.01, "momentum": 0.9}),
    Case("gh_gol",
         "DeepLocalize GitHub set: alexander-travov/gol_nn (gol.py)",
         "Game-of-Life CNN trained on binary cross-entropy by Adam at lr 1e-3 for 2 epochs",
         "mean squared error, Adam lr 0.01 (the repository's fix)",
         ("lr-low",), 250, {"name": "adam", "lr": 1e-3, "momentum": 0.0},
         published={"UMLAUT": "detected", "AutoTrainer": "not detected",
                    "DeepLocalize": "not detected", "DeepFD": "detected"},
         fixed_optimizer={"name": "adam", "lr": 0.01, "momentum": 0.0}),
    Case("gh_kerasma",
         "DeepLocalize GitHub set: eangelou/kerasma (kerasma.py; defects4ml bug 027)",
         "8-12-8-1 MLP on the raw (unscaled) Pima diabetes features",
         "deeper 8-12-24-120-36-12-1 MLP (the repository's fix)",
         ("structure", "input-scale"), 1500, {"name": "adam", "lr": 1e-3, "momentum": 0.0},
         published={"DeepLocalize": "not detected"}),
    Case("gh_averaging",
         "DeepLocalize GitHub set: vincenty2022/Averaging_Neural_Networks (keras_net.py)",
         "2-2-1 net with no hidden activation learning the average of two numbers",
         "a Dense(2, relu) layer inserted (the repository's fix)",
         ("linear-stack",), 1000, {"name": "rmsprop", "lr": 1e-3, "momentum": 0.0},
         published={"DeepLocalize": "detected (MDL, batch 4)"}),
    # Theia's Stack Overflow programs: buggy program and Theia's accuracy before/after repair
    Case("theia_64522751",
         "Theia SOF/64522751.py (Stack Overflow 64522751)",
         "CIFAR CNN trained by Adam at lr 0.1 on binary cross-entropy over a 10-way softmax",
         "Adam lr 1e-3, cross-entropy on logits (ours)",
         ("lr-high", "head-vs-loss"), 400, {"name": "adam", "lr": 0.1, "momentum": 0.0},
         published={"Theia": "accuracy 0.10 -> 0.79 after its repair"},
         fixed_optimizer={"name": "adam", "lr": 1e-3, "momentum": 0.0}),
    Case("theia_51118032",
         "Theia SOF/51118032.py (Stack Overflow 51118032)",
         "CIFAR CNN trained by SGD at lr 0.1 with Nesterov momentum 0.9",
         "lr 0.01 (ours)",
         ("lr-high",), 150, {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True},
         published={"Theia": "accuracy 0.10 -> 0.77 after its repair"},
         fixed_optimizer={"name": "sgd", "lr": 0.01, "momentum": 0.9, "nesterov": True}),
    Case("theia_63027146",
         "Theia SOF/63027146.py (Stack Overflow 63027146)",
         "CIFAR CNN fed raw 0..255 pixels",
         "pixels divided by 255 (ours)",
         ("input-scale",), 150, {"name": "adam", "lr": 1e-3, "momentum": 0.0},
         published={"Theia": "accuracy 0.10 -> 0.76 after its repair"}),
    Case("theia_62033143",
         "Theia SOF/62033143.py (Stack Overflow 62033143)",
         "Keras MNIST CNN under tf.keras, whose Adadelta defaults to lr 0.001",
         "Adadelta lr 1.0 (ours)",
         ("lr-low",), 60, {"name": "adadelta", "lr": 1e-3, "momentum": 0.0},
         published={"Theia": "accuracy 0.83 -> 0.99 after its repair"},
         fixed_optimizer={"name": "adadelta", "lr": 1.0, "momentum": 0.0}),
    Case("theia_49237068",
         "Theia SOF/49237068.py (Stack Overflow 49237068)",
         "sigmoid LeNet trained by tf.keras Adadelta at its default lr 0.001",
         "ReLU hidden activations and Adadelta lr 1.0 (ours; either alone stays at chance)",
         ("activation", "lr-low"), 400, {"name": "adadelta", "lr": 1e-3, "momentum": 0.0},
         published={"Theia": "accuracy 0.11 -> 0.86 after its repair"},
         fixed_optimizer={"name": "adadelta", "lr": 1.0, "momentum": 0.0}),
    # NeuraLint's Stack Overflow programs (buggy only)
    Case("neuralint_45378493",
         "NeuraLint SO Samples/45378493.py (Stack Overflow 45378493; defects4ml bug 086)",
         "1-D CNN with a softmax over its single output unit, binary cross-entropy",
         "sigmoid output (defects4ml's fixed version)",
         ("softmax-1",), 300, {"name": "adam", "lr": 1e-3, "momentum": 0.0}, quick=True,
         published={"NeuraLint": "in its evaluation set (per-program verdict not in its "
                                 "repository)"}),
    Case("neuralint_51749207",
         "NeuraLint SO Samples/51749207.py (Stack Overflow 51749207)",
         "1-D CNN with a softmax over its single output unit, binary cross-entropy",
         "sigmoid output (ours)",
         ("softmax-1",), 400, {"name": "nadam", "lr": 2e-3, "momentum": 0.0},
         published={"NeuraLint": "in its evaluation set (per-program verdict not in its "
                                 "repository)"}),
    # defects4ml (Morovati et al., EMSE 2023): buggy and fixed program per bug
    Case("d4ml_56103207",
         "defects4ml bug 091 (Stack Overflow 56103207; also NeuraLint SO Samples/56103207.py)",
         "CNN trained on arrays sorted by class; Keras' validation_split takes the last class",
         "arrays shuffled before training (defects4ml's fixed version)",
         ("data-order",), 400, {"name": "adam", "lr": 1e-3, "momentum": 0.0}),
    # DeepFD's benchmark
    Case("deepfd_37624102",
         "DeepFD benchmark row 34 (Stack Overflow 37624102, from Humbatova et al.'s taxonomy)",
         "CNN on constant images trained by SGD at lr 0.1 with Nesterov momentum 0.9",
         "lr 0.01 (DeepFD's patch)",
         ("lr-high",), 24, {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True},
         published={"UMLAUT": "detected", "AutoTrainer": "detected (unstable)",
                    "DeepLocalize": "detected (layers 8, 9)", "DeepFD": "detected"},
         fixed_optimizer={"name": "sgd", "lr": 0.01, "momentum": 0.9, "nesterov": True}),
]
