"""hrtem-tl: regenerate "Strategies for effective transfer learning for HRTEM analysis with neural networks".

Pipeline stages, each a module that imports only earlier ones:
``structures -> multislice -> simulate -> datasets -> model/train -> study -> claims -> figures -> book``.
"""

__version__ = "0.2.0"
