"""Generative models (GAN, DCGAN, VAE) usable on their own; graphrec uses them for synthetic-user
augmentation. This package never imports ``graphrec``. (Models arrive with the generative issue.)"""
