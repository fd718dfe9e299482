"""Plain torch.nn.Module networks: they import only torch and return logits."""

from fmlab.nets.bert import Bert
from fmlab.nets.convnet import ConvNet
from fmlab.nets.dcgan import DCGAN, Discriminator, Generator
from fmlab.nets.efficientnet import EfficientNetB0
from fmlab.nets.gpt import GPT
from fmlab.nets.mobilenetv2 import MobileNetV2
from fmlab.nets.resnet import ResNet
from fmlab.nets.resnet9 import ResNet9
from fmlab.nets.resnet_cifar import ResNetCifar
from fmlab.nets.rnn import RecurrentLM
from fmlab.nets.sequence_classifier import SequenceClassifier
from fmlab.nets.vgg import VGG
from fmlab.nets.vit import ViT

__all__ = [
    "DCGAN",
    "GPT",
    "VGG",
    "Bert",
    "ConvNet",
    "Discriminator",
    "EfficientNetB0",
    "Generator",
    "MobileNetV2",
    "RecurrentLM",
    "ResNet",
    "ResNet9",
    "ResNetCifar",
    "SequenceClassifier",
    "ViT",
]
