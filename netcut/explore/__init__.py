"""NetCut's exploration loop: plan, retrain only the proposed TRNs, pick, report."""
