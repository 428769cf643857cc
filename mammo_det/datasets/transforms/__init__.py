from .loading import LoadBiradsAnnotations, LoadMammogram, PackMammoInputs

__all__ = ['LoadBiradsAnnotations', 'LoadMammogram', 'PackMammoInputs']
