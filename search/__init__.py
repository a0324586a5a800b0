"""The MSuNAS engine: archive, ask/tell loop, surrogate-assisted NSGA-II, objectives, hypervolume and plots."""
