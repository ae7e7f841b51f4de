"""Calibration: the measured constants of bnlint/predict/theory.py, and the paper
reproductions behind them."""
