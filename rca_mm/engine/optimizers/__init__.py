"""Optimizer wrapper constructors."""
from .bias_rule_constructor import BiasRuleOptimWrapperConstructor

__all__ = ['BiasRuleOptimWrapperConstructor']
