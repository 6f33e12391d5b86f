"""Run this library's protocols over Flower's Deployment Engine (extra ``flower``)."""
