"""Language models over the acoustic model's units: training (`train_lm`), loading (`load_lm`)
and the interface beam search fuses (`LanguageModel.log_probs`)."""
