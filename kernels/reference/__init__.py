"""The NumPy reference backend: every op of the table in readable NumPy.

This is the specification every compiled backend is tested against.
"""
from .activations import (elu, elu_backward, gelu, gelu_backward, gelu_tanh,
                          gelu_tanh_backward, mish, mish_backward, hardsigmoid,
                          hardsigmoid_backward, hardswish, hardswish_backward, hardtanh,
                          hardtanh_backward, leaky_relu, leaky_relu_backward, log_softmax,
                          log_softmax_backward, relu, relu_backward, sigmoid, sigmoid_backward,
                          silu, silu_backward, sine, sine_backward, softmax, softmax_backward,
                          softplus, softplus_backward, softsign, softsign_backward, tanh,
                          tanh_backward)
from .batchnorm import batchnorm_backward, batchnorm_forward
from .dense import linear_backward, linear_forward
from .dropout import dropout_backward, dropout_forward
from .layernorm import layer_norm_backward, layer_norm_forward
from .losses import (bce_loss, bce_with_logits_loss, mse_loss, smooth_l1_loss,
                     softmax_cross_entropy)
from .optim import (adadelta_update, adagrad_update, adam_update, adamax_update,
                    adaptive_moments_update, asgd_update, rmsprop_update, rprop_update,
                    sgd_update)
from .conv import (avg_pool2d_backward, avg_pool2d_forward, conv2d_backward, conv2d_forward,
                   max_pool2d_backward, max_pool2d_forward)
from .depthwise import depthwise_conv2d_backward, depthwise_conv2d_forward
