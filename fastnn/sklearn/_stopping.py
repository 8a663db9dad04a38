"""scikit-learn's MLP stopping rule as a fastnn callback.

After every epoch (scikit-learn's ``_update_no_improvement_count``):

- with early stopping, the validation score s (accuracy or R²) is recorded;
  the epoch counts as no improvement when s < best_score + tol, and a
  score above the best one keeps the weights of that epoch;
- without it, the training loss L (the epoch's mean loss plus the weight
  penalty) counts as no improvement when L > best_loss − tol.

Training stops once more than ``n_iter_no_change`` consecutive epochs did
not improve.  The counters live on the estimator, so that a warm start
continues them as scikit-learn's does.
"""

from fastnn.callbacks import Callback


class NoImprovementStopping(Callback):
    """Record each epoch on the estimator and stop as scikit-learn's MLP does.

    Parameters
    ----------
    estimator : FastNNClassifier or FastNNRegressor
        Receives ``loss_curve_``, ``n_iter_``, ``t_`` and, with early
        stopping, ``validation_scores_`` and ``validation_loss_curve_``.
    n_train : int
        Rows trained on (the penalty is λ/(2·n_train)·Σw²).
    validation : (X_val, y_val, sample_weight_val) or None
        The held-out rows, already converted; None without early stopping.
    """

    def __init__(self, estimator, n_train, validation=None):
        self.estimator = estimator
        self.n_train = n_train
        self.validation = validation
        self.stopped = False

    def on_epoch_end(self, epoch, logs):
        est, model = self.estimator, self.model
        loss = float(logs["loss"]) + float(model.penalty(self.n_train))
        est.loss_ = loss
        est.loss_curve_.append(loss)
        est.n_iter_ += 1
        est.t_ += self.n_train
        if self.validation is not None:
            score = est._validation_score(*self.validation)
            est.validation_scores_.append(score)
            est.validation_loss_curve_.append(float(logs["val_loss"]))
            if score < est.best_validation_score_ + est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                est._best_state = model.get_state()
        else:
            if loss > est.best_loss_ - est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            est.best_loss_ = min(est.best_loss_, loss)
        if est._no_improvement_count > est.n_iter_no_change:
            self.stopped = True
            model.stop_training = True

    def on_train_end(self):
        # As scikit-learn's MLP, early stopping ends with the best epoch's weights.
        if self.validation is not None and self.estimator._best_state is not None:
            self.model.set_state(self.estimator._best_state)
