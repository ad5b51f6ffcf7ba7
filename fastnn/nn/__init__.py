"""Layers, containers and losses with explicit forward/backward (PyTorch's semantics)."""
from .activations import (CELU, ELU, GELU, SELU, Hardsigmoid, Hardswish, Hardtanh, Identity,
                          LeakyReLU, LogSigmoid, LogSoftmax,
                          Mish, PReLU, ReLU, ReLU6, Sigmoid, SiLU, Sine, Softmax, Softmin,
                          Softplus, Softsign, Tanh)
from .attention import MultiheadAttention
from .adaptive import AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveMaxPool1d, AdaptiveMaxPool2d
from .batchnorm import BatchNorm1d, BatchNorm2d, BatchNorm3d
from .container import ModuleDict, ModuleList, ParameterDict, ParameterList, Sequential
from .conv import Conv1d, Conv2d
from .conv_transpose import ConvTranspose1d, ConvTranspose2d
from .conv3d import Conv3d, ConvTranspose3d
from .distance import Bilinear, CosineSimilarity, PairwiseDistance
from .embedding import Embedding
from .embedding_bag import EmbeddingBag
from .ctc import CTCLoss
from .dropout import (AlphaDropout, Dropout, Dropout1d, Dropout2d, Dropout3d,
                      FeatureAlphaDropout)
from . import init
from .flatten import Flatten, Unflatten
from .groupnorm import GroupNorm, InstanceNorm1d, InstanceNorm2d, InstanceNorm3d
from .host_layers import (GLU, ChannelShuffle, Hardshrink, LocalResponseNorm, PixelShuffle,
                          PixelUnshuffle, RMSNorm, RReLU, Softmax2d, Softshrink, Tanhshrink,
                          Threshold)
from .layernorm import LayerNorm
from .linear import Linear
from .loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HingeEmbeddingLoss, HuberLoss,
                   KLDivLoss, L1Loss, Loss, MSELoss, MultiLabelMarginLoss,
                   MultiLabelSoftMarginLoss, MultiMarginLoss, NLLLoss,
                   PoissonNLLLoss, SmoothL1Loss, SoftMarginLoss)
from .module import Module, Parameter, RemovableHandle
from .pair_losses import (CosineEmbeddingLoss, GaussianNLLLoss, MarginRankingLoss,
                          TripletMarginLoss, TripletMarginWithDistanceLoss)
from .transformer import (Transformer, TransformerDecoder, TransformerDecoderLayer,
                          TransformerEncoder, TransformerEncoderLayer)
from .recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from .padding import (CircularPad1d, CircularPad2d, CircularPad3d, ConstantPad1d,
                      ConstantPad2d, ConstantPad3d, ReflectionPad1d, ReflectionPad2d,
                      ReflectionPad3d, ReplicationPad1d, ReplicationPad2d, ReplicationPad3d,
                      ZeroPad1d, ZeroPad2d, ZeroPad3d)
from .pooling import (AvgPool1d, AvgPool2d, LPPool1d, LPPool2d, MaxPool1d, MaxPool2d,
                      MaxUnpool1d, MaxUnpool2d)
from .pool3d import (AdaptiveAvgPool3d, AdaptiveMaxPool3d, AvgPool3d, LPPool3d, MaxPool3d,
                     MaxUnpool3d)
from .unfold import Fold, Unfold
from .fractional_pool import FractionalMaxPool2d, FractionalMaxPool3d
from .lazy import LazyConv3d, LazyConvTranspose3d
from .host_layers import CrossMapLRN2d
from .recurrent import RNNBase, RNNCellBase
from .adaptive_softmax import AdaptiveLogSoftmaxWithLoss
from .linear_cross_entropy import LinearCrossEntropyLoss
from .lazy import (LazyBatchNorm1d, LazyBatchNorm2d, LazyBatchNorm3d, LazyConv1d, LazyConv2d,
                   LazyConvTranspose1d, LazyConvTranspose2d, LazyInstanceNorm1d,
                   LazyInstanceNorm2d, LazyInstanceNorm3d, LazyLinear)
from .upsample import Upsample, UpsamplingBilinear2d, UpsamplingNearest2d
from . import utils
from . import functional

__all__ = ["Module", "Parameter", "RemovableHandle", "functional", "Linear", "LazyLinear",
           "LazyConv1d", "LazyConv2d",
           "LazyConvTranspose1d", "LazyConvTranspose2d", "LazyBatchNorm1d", "LazyBatchNorm2d",
           "LazyBatchNorm3d", "LazyInstanceNorm1d", "LazyInstanceNorm2d", "LazyInstanceNorm3d",
           "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "SiLU",
           "ELU", "SELU", "CELU", "Hardsigmoid", "Hardswish", "Mish", "LogSigmoid", "Softplus",
           "Hardtanh", "ReLU6", "PReLU", "Softsign", "Sine", "Identity", "Softmax", "Softmin",
           "LogSoftmax",
           "Softmax2d", "Hardshrink", "Softshrink", "Tanhshrink", "Threshold", "GLU", "RReLU",
           "PixelShuffle", "PixelUnshuffle", "ChannelShuffle", "RMSNorm", "LocalResponseNorm",
           "CosineSimilarity", "PairwiseDistance", "Bilinear", "MultiheadAttention",
           "TransformerEncoderLayer", "TransformerEncoder", "TransformerDecoderLayer",
           "TransformerDecoder", "Transformer",
           "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell",
           "Flatten", "Unflatten", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d",
           "AlphaDropout", "FeatureAlphaDropout", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d",
           "LayerNorm", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d",
           "Embedding", "EmbeddingBag", "Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d",
           "MaxPool1d", "MaxPool2d", "MaxUnpool1d", "MaxUnpool2d", "AvgPool1d", "AvgPool2d",
           "LPPool1d", "LPPool2d", "Fold", "Unfold",
           "Conv3d", "ConvTranspose3d", "MaxPool3d", "AvgPool3d", "LPPool3d", "MaxUnpool3d",
           "FractionalMaxPool2d", "FractionalMaxPool3d",
           "LazyConv3d", "LazyConvTranspose3d", "CrossMapLRN2d", "RNNBase", "RNNCellBase",
           "AdaptiveLogSoftmaxWithLoss", "LinearCrossEntropyLoss",
           "AdaptiveAvgPool3d", "AdaptiveMaxPool3d",
           "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d",
           "Upsample",
           "UpsamplingNearest2d", "UpsamplingBilinear2d",
           "ZeroPad1d", "ZeroPad2d", "ZeroPad3d", "ConstantPad1d", "ConstantPad2d",
           "ConstantPad3d", "ReflectionPad1d", "ReflectionPad2d", "ReflectionPad3d",
           "ReplicationPad1d", "ReplicationPad2d", "ReplicationPad3d", "CircularPad1d",
           "CircularPad2d", "CircularPad3d",
           "Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict", "Loss",
           "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "CrossEntropyLoss", "NLLLoss",
           "BCELoss", "BCEWithLogitsLoss", "KLDivLoss", "SoftMarginLoss", "HingeEmbeddingLoss",
           "PoissonNLLLoss", "MultiLabelSoftMarginLoss", "MultiMarginLoss", "MarginRankingLoss",
           "CosineEmbeddingLoss", "TripletMarginLoss", "GaussianNLLLoss", "MultiLabelMarginLoss",
           "TripletMarginWithDistanceLoss", "CTCLoss", "init", "utils"]
