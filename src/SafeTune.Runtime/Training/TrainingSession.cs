using Microsoft.ML.OnnxRuntime;
using SafeTune.Autodiff;
using SafeTune.Autodiff.Losses;
using SafeTune.Autodiff.Optimizers;
using SafeTune.Onnx;
using SafeTune.Onnx.Inspection;
using SafeTune.Onnx.Passes;

namespace SafeTune.Runtime.Training;

/// <summary>
/// On-device training of a language model with the shape of ONNX Runtime's former training API: <see cref="TrainStep(TokenBatch, float)"/>
/// (forward + backward, accumulating gradients), <see cref="EvalStep"/>, <see cref="OptimizerStep"/>,
/// <see cref="LazyResetGrad"/>, learning-rate get/set, clipping by global norm, checkpoints and
/// <see cref="ExportModelForInferencing"/>.
/// <para>
/// Parameters, gradients and optimizer state live in flat buffers bound to the sessions with IOBinding, in host memory on
/// the CPU provider and in device memory on CUDA and DirectML, so they stay on the device between steps; a step copies
/// nothing back but the loss. The optimizer is itself an ONNX graph over those buffers.
/// </para>
/// </summary>
internal sealed class TrainingSession : IDisposable
{
    private readonly Model _forward;
    private readonly Model _given;
    private readonly BackwardResult _backward;
    private readonly BoundSession _train, _eval, _optimizer, _norm;
    private readonly FlatBuffer _params, _grads, _state1, _state2;
    private readonly FlatBuffer? _reference;
    private readonly DeviceStorage? _device;
    private readonly SharedInitializers? _ownedShared;
    private readonly OrtValueBag _owned = new();
    private readonly Dictionary<string, float[]> _metrics = new(StringComparer.Ordinal);
    private readonly string[] _stepInputs;
    private readonly float[] _keep = [0f], _weight = [1f], _loss = [0f], _evalLoss = [0f], _squaredNorm = [0f];
    private readonly float[] _lr = [0f], _beta1 = [0f], _beta2 = [0f], _eps = [0f], _wd = [0f], _bc1 = [0f], _bc2 = [0f], _scale = [1f], _momentum = [0f], _rho = [0f];
    private bool _resetPending = true;
    private double _clipScale = 1.0;
    private double? _proximalRho;

    private TrainingSession(Model given, Model forward, IReadOnlyList<TiedCopy> ties, BackwardResult backward, Model evalModel, TrainingOptions options,
        long vocab, long inputVocab, IReadOnlyList<string> metrics, IReadOnlyList<string> stepInputs)
    {
        _given = given;
        _forward = forward;
        Ties = ties;
        _backward = backward;
        Options = options;
        VocabSize = vocab;
        InputVocabSize = inputVocab;
        LearningRate = options.Optimizer.LearningRate;
        var layout = new ParameterLayout(backward.Parameters.Select(p => (p, backward.InitialValues[p].Dims)));
        Layout = layout;
        if (options.DeviceResidentState ?? options.Runtime.Provider != ExecutionProvider.Cpu) _device = new DeviceStorage(options.Runtime);
        _params = new FlatBuffer(layout, _device);
        _grads = new FlatBuffer(layout, _device);
        _state1 = new FlatBuffer(layout, _device);
        _state2 = new FlatBuffer(layout, _device);
        foreach (var p in backward.Parameters) _params.Write(p, backward.InitialValues[p].AsSpan<float>());
        bool proximal = options.Optimizer.ProximalRho is not null;
        if (proximal)
        {
            _reference = new FlatBuffer(layout, _device);
            _reference.CopyFrom(_params);
        }

        foreach (var m in metrics) _metrics[m] = [float.NaN];
        _stepInputs = [.. stepInputs];
        // The graph the session runs: fused heads lowered to standard ops (the unlowered graph stays for the memory estimate).
        var trainGraph = backward.Model;
        if (trainGraph.Graph.Nodes.Any(FusedResponseHead.Is))
        {
            trainGraph = trainGraph.Clone("training graph (lowered)");
            FusedResponseHead.Lower(trainGraph);
        }
        var shared = options.SharedWeights ?? (_ownedShared = SharedInitializers.Create(trainGraph, backward.Parameters, _device));
        SharedWeights = shared;
        var runtime = options.Runtime.ForTraining();
        _train = shared.CreateBound(trainGraph, runtime);
        _eval = shared.CreateBound(evalModel, runtime);
        // Checkpointing trades time for memory: the step's arena is handed back after each step too, so the next step
        // (and the reference pass before it) does not grow the process beyond the first step's peak. Measured on
        // Qwen2.5-0.5B, 8 x 512 adaptive: peak 4.27 GB instead of 4.90 GB for 3% more time; without checkpointing, at
        // 2 x 128, the same costs 2.5 times the step time (the memory is faulted in again every step), so it stays off.
        if (options.CheckpointActivations) _train.ReleaseArenaAfterRun();
        var optimizerGraph = options.Optimizer.Kind == OptimizerKind.AdamW ? OptimizerGraphs.AdamW(proximal) : OptimizerGraphs.Sgd(proximal);
        _optimizer = new BoundSession(SessionFactory.Create(optimizerGraph, options.Runtime));
        _norm = new BoundSession(SessionFactory.Create(OptimizerGraphs.SquaredNorm(), options.Runtime));
        BindStatic();
    }

    /// <summary>The options the session was made with.</summary>
    public TrainingOptions Options { get; }

    /// <summary>Where each trainable parameter lives in the flat buffers.</summary>
    public ParameterLayout Layout { get; }

    /// <summary>The trainable parameters, in order.</summary>
    public IReadOnlyList<string> Trainable => _backward.Parameters;

    /// <summary>The copies of tied weights that were re-tied before training (none when the trainable list was given).</summary>
    public IReadOnlyList<TiedCopy> Ties { get; }

    /// <summary>The forward model being trained, with its starting weights: the model given, or its re-tied copy.</summary>
    public Model StartingModel => _forward;

    /// <summary>The number of output classes (the logits' last dim) labels are checked against.</summary>
    public long VocabSize { get; }

    /// <summary>
    /// The number of input token ids (the embedding table's rows; the output vocabulary when no embedding table is
    /// recognised) input ids are checked against. It differs from <see cref="VocabSize"/> for classifiers.
    /// </summary>
    public long InputVocabSize { get; }

    /// <summary>The frozen weights the sessions read from shared buffers.</summary>
    public SharedInitializers SharedWeights { get; }

    /// <summary>The inputs every step must be given besides the token batch: exactly those the objective declares.</summary>
    public IReadOnlyList<string> StepInputs => _stepInputs;

    /// <summary>
    /// True when the objective's KL term reads the reference's hidden rows (<see cref="ResponseNames.ReferenceHidden"/>,
    /// a fused head) rather than its log-probabilities: make the <see cref="ReferencePolicy"/> with
    /// <see cref="ReferenceOptions.HiddenRows"/> then.
    /// </summary>
    public bool ReadsReferenceHidden => _stepInputs.Contains(ResponseNames.ReferenceHidden);

    /// <summary>The shapes of the objective's per-token step inputs for <paramref name="responseTokens"/> response positions.</summary>
    public Dictionary<string, long[]> ResponseInputShapes(int responseTokens) =>
        MemoryEstimate.ResponseInputShapes(responseTokens, VocabSize,
            ReferencePolicy.HiddenWidth(_backward.Model));

    /// <summary>The objective's logging outputs (scalars), by name, as of the last step.</summary>
    public IReadOnlyDictionary<string, float> Metrics => _metrics.ToDictionary(kv => kv.Key, kv => kv.Value[0], StringComparer.Ordinal);

    /// <summary>The number of optimizer steps taken.</summary>
    public long Step { get; private set; }

    /// <summary>The learning rate of the next optimizer step.</summary>
    public double LearningRate { get; private set; }

    /// <summary>Sets the learning rate of the next optimizer steps (schedules call this every step).</summary>
    public void SetLearningRate(double lr)
    {
        if (!(lr > 0) || double.IsInfinity(lr)) throw new UserInputException($"the learning rate must be positive, not {lr}.");
        LearningRate = lr;
    }

    /// <summary>The learning rate of the next optimizer step.</summary>
    public double GetLearningRate() => LearningRate;

    /// <summary>
    /// Sets the strength of the proximal pull <c>g += rho * (w - w_ref)</c> for the next optimizer steps (a risk-dependent
    /// penalty changes it every step). The session must have been made with <see cref="OptimizerConfig.ProximalRho"/> set.
    /// </summary>
    public void SetProximalRho(double rho)
    {
        if (_reference is null) throw new InvalidOperationException("this session has no proximal term; create it with OptimizerConfig.ProximalRho set.");
        if (!(rho >= 0) || double.IsInfinity(rho)) throw new UserInputException($"the proximal rho must be 0 or more, not {rho}.");
        _proximalRho = rho;
    }

    /// <summary>Builds the training, evaluation and optimizer graphs of a language model and opens their sessions.</summary>
    public static TrainingSession Create(Model model, TrainingOptions? options = null)
    {
        options ??= new TrainingOptions();
        options.Optimizer.Validate();
        var given = model;
        if (options.Trainable is not null && !options.Selection.IsDefault)
            throw new UserInputException("give either a trainable list or a parameter selection, not both.");
        IReadOnlyList<TiedCopy> ties = [];
        IReadOnlyList<string>? chosen = options.Trainable;
        if (chosen is null)
        {
            var selected = options.Selection.Resolve(model);
            (model, chosen, ties) = (selected.Model, selected.Trainable, selected.Ties);
        }
        var logits = LossGraphs.FindLogits(model);
        long vocab = logits.Shape?[-1].Value ?? throw new InvalidDataException($"output '{logits.Name}' has no known vocabulary size.");
        var withLoss = model.Clone("training graph");
        bool large = options.ExpectedResponseRows is not { } rows || rows * vocab * sizeof(float) >= TrainingOptions.FusedHeadMinBytes;
        var fuse = options.FusedHead && large ? chosen.ToHashSet(StringComparer.Ordinal) : null;
        var (loss, metrics, stepInputs) = options.Objective.Append(withLoss, logits.Name, fuse);
        foreach (var o in withLoss.Graph.Outputs.Where(o => o != loss && !metrics.Contains(o.Name)).ToList()) withLoss.Graph.RemoveOutput(o);
        var trainable = chosen.ToList();
        if (trainable.Count == 0) throw new UserInputException("there are no trainable parameters.");
        foreach (var name in trainable)
        {
            var v = withLoss.Graph.FindInitializer(name) ?? throw new UserInputException($"trainable parameter '{name}' is not an initializer of the model.");
            if (v.ElementType != ElementType.Float)
                throw new UserInputException($"trainable parameter '{name}' is {v.ElementType.OnnxName()}; training supports float32 parameters.");
        }
        if (options.BaseDtype != ElementType.Float) SixteenBitWeights.Apply(withLoss.Graph, FrozenWeights(model, trainable), options.BaseDtype);
        var backwardOptions = options.Backward with { KeepForwardOutputs = true };
        if (options.CheckpointActivations) backwardOptions = backwardOptions with { Checkpoints = ActivationCheckpoints(model) };
        var backward = BackwardBuilder.Build(withLoss, loss.Name, trainable, backwardOptions);
        GradientAccumulation.Append(backward);
        var fed = new HashSet<string>([.. trainable, .. stepInputs, GradientAccumulation.Keep, GradientAccumulation.Weight], StringComparer.Ordinal);
        fed.UnionWith(trainable.Select(GradientAccumulation.AccumulatorName));
        if (backward.Model.Graph.Inputs.FirstOrDefault(v => !v.IsInitializer && !fed.Contains(v.Name) && !TokenBatch.Provides(v.Name)) is { } other)
            throw new ArgumentException($"the model's input '{other.Name}' is neither a token-batch input nor one the {options.Objective} objective declares.");

        var evalModel = withLoss.Clone("evaluation graph");
        foreach (var name in trainable) evalModel.Graph.PromoteInitializerToInput(evalModel.Graph.FindInitializer(name)!);
        foreach (var o in evalModel.Graph.Outputs.Where(o => o.Name != loss.Name && !metrics.Contains(o.Name)).ToList()) evalModel.Graph.RemoveOutput(o);
        evalModel.Graph.RemoveUnusedNodes();
        FusedResponseHead.Lower(evalModel);
        return new TrainingSession(given, model, ties, backward, evalModel, options, vocab, GradientSession.VocabFromEmbedding(model) ?? vocab, metrics, stepInputs);
    }

    /// <summary>
    /// The weights <see cref="TrainingOptions.BaseDtype"/> stores in 16 bits: the frozen parameters (as
    /// <see cref="ParameterRoles"/> tells them from buffers) shared by <see cref="SharedInitializers"/> (at least
    /// <see cref="SharedInitializers.MinElements"/> elements), except
    /// the output head's weight (the embedding table, when tied). Ops compute in float32, so a 16-bit weight is widened
    /// whole wherever a product reads it: for a block's weights that copy is small and short-lived, but the head's is as
    /// large as the vocabulary times the width (519 MB on Qwen2.5-0.5B) and is made again in the backward pass, which
    /// costs more at the peak than the half it saves (measured). Embedding rows gathered from a 16-bit table are
    /// widened row by row, so an untied input embedding is stored in 16 bits.
    /// </summary>
    internal static IEnumerable<string> FrozenWeights(Model model, IEnumerable<string> trainable)
    {
        var train = trainable.ToHashSet(StringComparer.Ordinal);
        if (ResponseLosses.FindHead(model, LossGraphs.FindLogits(model).Name) is { Weight: { IsInitializer: true } head }) train.Add(head.Name);
        return ParameterRoles.Of(model).Where(r => r.IsParameter && r.Elements >= SharedInitializers.MinElements && !train.Contains(r.Name)).Select(r => r.Name);
    }

    /// <summary>The residual stream after each transformer block: the activations kept when checkpointing.</summary>
    private static IReadOnlyList<string> ActivationCheckpoints(Model model)
    {
        var located = Onnx.Passes.HiddenStateLocator.Locate(model.Clone("activation checkpoints"), out var input);
        if (located.Count == 0 || located.Count == 1 && input is null)
            throw new OptionException("checkpoint-activations", "{checkpoint-activations}: no transformer blocks were found in the model to recompute; train without it.");
        // The stream before the first block, then after each block: every block is recomputed.
        return [.. input is null ? [] : new[] { input.Name }, .. located.Select(c => c.Tensor.Name)];
    }

    private OrtValue Own(string name, float[] scalar) => _owned.Add(name, OrtValue.CreateTensorValueFromMemory(scalar, []));

    private void BindStatic()
    {
        foreach (var p in _backward.Parameters)
        {
            _train.BindInput(p, _params.Views[p]);
            _eval.BindInput(p, _params.Views[p]);
            _train.BindInput(GradientAccumulation.AccumulatorName(p), _grads.Views[p]);
            _train.BindOutput(BackwardResult.GradientName(p), _grads.Views[p]);
        }
        _train.BindInput(GradientAccumulation.Keep, Own("keep", _keep));
        _train.BindInput(GradientAccumulation.Weight, Own("weight", _weight));
        _train.BindOutput(_backward.LossName, Own("loss", _loss));
        _eval.BindOutput(_backward.LossName, Own("eval_loss", _evalLoss));
        foreach (var (name, value) in _metrics)
        {
            _train.BindOutput(name, Own("metric:" + name, value));
            _eval.BindOutput(name, Own("eval_metric:" + name, value));
        }

        _optimizer.BindInput(OptimizerNames.Param, _params.Whole);
        _optimizer.BindOutput(OptimizerNames.ParamOut, _params.Whole);
        _optimizer.BindInput(OptimizerNames.Grad, _grads.Whole);
        _optimizer.BindInput(OptimizerNames.State1, _state1.Whole);
        _optimizer.BindOutput(OptimizerNames.State1Out, _state1.Whole);
        _optimizer.BindInput(OptimizerNames.LearningRate, Own("lr", _lr));
        _optimizer.BindInput(OptimizerNames.WeightDecay, Own("wd", _wd));
        _optimizer.BindInput(OptimizerNames.GradScale, Own("scale", _scale));
        if (Options.Optimizer.Kind == OptimizerKind.AdamW)
        {
            _optimizer.BindInput(OptimizerNames.State2, _state2.Whole);
            _optimizer.BindOutput(OptimizerNames.State2Out, _state2.Whole);
            _optimizer.BindInput(OptimizerNames.Beta1, Own("beta1", _beta1));
            _optimizer.BindInput(OptimizerNames.Beta2, Own("beta2", _beta2));
            _optimizer.BindInput(OptimizerNames.Epsilon, Own("eps", _eps));
            _optimizer.BindInput(OptimizerNames.BiasCorrection1, Own("bc1", _bc1));
            _optimizer.BindInput(OptimizerNames.BiasCorrection2, Own("bc2", _bc2));
        }
        else _optimizer.BindInput(OptimizerNames.Momentum, Own("momentum", _momentum));
        if (_reference is not null)
        {
            _optimizer.BindInput(OptimizerNames.Reference, _reference.Whole);
            _optimizer.BindInput(OptimizerNames.Rho, Own("rho", _rho));
        }
        _norm.BindInput(OptimizerNames.Grad, _grads.Whole);
        _norm.BindOutput(OptimizerNames.SquaredNorm, Own("squared_norm", _squaredNorm));
    }

    private void BindBatch(BoundSession session, TokenBatch batch, IReadOnlyDictionary<string, OrtValue>? inputs)
    {
        batch.Validate(InputVocabSize, VocabSize);
        string prefix = ReferenceEquals(session, _train) ? "train:" : "eval:";
        foreach (var input in session.Session.InputMetadata.Keys)
            if (batch.InputFor(input) is { } v)
                session.BindInput(input, _owned.Add(prefix + input, v));
        var missing = _stepInputs.Where(n => inputs is null || !inputs.ContainsKey(n)).ToList();
        if (missing.Count > 0)
            throw new UserInputException($"the {Options.Objective} objective needs the step input(s) {string.Join(", ", missing)}.");
        if (inputs?.Keys.FirstOrDefault(n => !_stepInputs.Contains(n)) is { } unexpected)
            throw new UserInputException($"the {Options.Objective} objective has no step input '{unexpected}'; it declares "
                + (_stepInputs.Length == 0 ? "none." : string.Join(", ", _stepInputs) + "."));
        foreach (var name in _stepInputs) session.BindInput(name, inputs![name]);
    }

    /// <summary>
    /// Forward and backward on one batch. The gradients are added to the accumulated ones (scaled by
    /// <paramref name="gradientWeight"/>), or replace them after <see cref="LazyResetGrad"/>. Returns the loss.
    /// </summary>
    public float TrainStep(TokenBatch batch, float gradientWeight = 1f) => TrainStep(batch, null, gradientWeight);

    /// <summary>
    /// Forward and backward on one batch, with the objective's <see cref="StepInputs"/> (the caller keeps ownership of
    /// them). The gradients are added to the accumulated ones (scaled by <paramref name="gradientWeight"/>), or replace
    /// them after <see cref="LazyResetGrad"/>. Returns the loss; the objective's <see cref="Metrics"/> are updated.
    /// </summary>
    public float TrainStep(TokenBatch batch, IReadOnlyDictionary<string, OrtValue>? inputs, float gradientWeight = 1f)
    {
        BindBatch(_train, batch, inputs);
        _keep[0] = _resetPending ? 0f : 1f;
        _weight[0] = gradientWeight;
        _train.Run();
        _resetPending = false;
        return _loss[0];
    }

    /// <summary>
    /// Predicts the peak memory of a training step on <paramref name="batch"/> (with the objective's step inputs) before it
    /// runs; <paramref name="referenceActivations"/> adds a reference pass's own peak (see <see cref="ReferencePolicy.EstimateActivations"/>).
    /// </summary>
    public MemoryEstimate EstimateMemory(TokenBatch batch, IReadOnlyDictionary<string, long[]>? stepInputShapes = null, long referenceActivations = 0)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var shapes = MemoryEstimate.InputShapes(_train.Session.InputMetadata.Keys, batch, stepInputShapes);
        var external = new HashSet<string>(_backward.Parameters, StringComparer.Ordinal);
        external.UnionWith(_backward.Parameters.Select(GradientAccumulation.AccumulatorName));
        external.UnionWith(SharedWeights.Names);
        var (peak, largest, name, unknown, atPeak) = MemoryEstimate.Activations(_backward.Model, shapes, external);
        return new MemoryEstimate(SharedWeights.Bytes, 4L * Layout.ParameterElements * sizeof(float), Math.Max(peak, referenceActivations),
            largest, name, unknown, atPeak);
    }

    /// <summary>The loss on one batch with the current weights, without gradients.</summary>
    public float EvalStep(TokenBatch batch, IReadOnlyDictionary<string, OrtValue>? inputs = null)
    {
        BindBatch(_eval, batch, inputs);
        _eval.Run();
        return _evalLoss[0];
    }

    /// <summary>The next <see cref="TrainStep(TokenBatch, float)"/> starts a new gradient accumulation instead of adding to the current one.</summary>
    public void LazyResetGrad() => _resetPending = true;

    /// <summary>
    /// Measures the global L2 norm of the accumulated gradients and, when it exceeds <paramref name="maxNorm"/>, scales
    /// the next optimizer step's gradients by <c>maxNorm / (norm + 1e-6)</c> (PyTorch's clip_grad_norm_). Returns the norm.
    /// </summary>
    public double ClipGradNorm(double maxNorm)
    {
        if (!(maxNorm > 0)) throw new UserInputException($"the clipping norm must be positive, not {maxNorm}.");
        double norm = GradientNorm();
        _clipScale = Math.Min(1.0, maxNorm / (norm + 1e-6));
        return norm;
    }

    /// <summary>The global L2 norm of the accumulated gradients.</summary>
    public double GradientNorm()
    {
        _norm.Run();
        return Math.Sqrt(_squaredNorm[0]);
    }

    /// <summary>Applies the optimizer to the accumulated gradients with the current learning rate.</summary>
    public void OptimizerStep()
    {
        var o = Options.Optimizer;
        Step++;
        _lr[0] = (float)LearningRate;
        _wd[0] = (float)o.WeightDecay;
        _scale[0] = (float)_clipScale;
        _beta1[0] = (float)o.Beta1;
        _beta2[0] = (float)o.Beta2;
        _eps[0] = (float)o.Epsilon;
        _bc1[0] = (float)(1 - Math.Pow(o.Beta1, Step));
        _bc2[0] = (float)(1 - Math.Pow(o.Beta2, Step));
        _momentum[0] = (float)o.Momentum;
        _rho[0] = (float)(_proximalRho ?? o.ProximalRho ?? 0);
        _optimizer.Run();
        _clipScale = 1.0;
    }

    /// <summary>A copy of a trainable parameter's accumulated gradient.</summary>
    public float[] GetGradient(string name) => _grads.Read(name);

    /// <summary>A copy of a trainable parameter's current values.</summary>
    public float[] GetParameter(string name) => _params.Read(name);

    /// <summary>Copies of every trainable parameter's current values.</summary>
    public IReadOnlyList<TensorData> TrainableValues() =>
        [.. Layout.Entries.Select(e => TensorData.Create<float>(e.Name, e.Dims, _params.Read(e.Name)))];

    /// <summary>The forward model with the current values of the trainable parameters as its initializers.</summary>
    public Model CurrentModel()
    {
        var model = _forward.Clone("trained model");
        foreach (var t in TrainableValues()) model.Graph.SetInitializer(model.Graph.FindInitializer(t.Name)!, t);
        return model;
    }

    /// <summary>
    /// The model as it was given, with the trained weights: where copies were re-tied, each copy gets the trained values of
    /// the tensor it copies (transposed where it was), so the graph is the input's own.
    /// </summary>
    public Model CurrentModelAsGiven()
    {
        if (Ties.Count == 0) return CurrentModel();
        var model = _given.Clone("trained model");
        foreach (var t in TrainableValues()) model.Graph.SetInitializer(model.Graph.FindInitializer(t.Name)!, t);
        foreach (var tie in Ties)
        {
            var kept = model.Graph.FindInitializer(tie.Kept)!.Initializer!;
            model.Graph.SetInitializer(model.Graph.FindInitializer(tie.Copy)!, tie.Transposed ? Transpose(kept) : kept);
        }
        return model;
    }

    private static TensorData Transpose(TensorData matrix)
    {
        var x = matrix.AsSpan<float>();
        long rows = matrix.Dims[0], cols = matrix.Dims[1];
        var y = new float[x.Length];
        for (long r = 0; r < rows; r++)
            for (long c = 0; c < cols; c++)
                y[c * rows + r] = x[(int)(r * cols + c)];
        return TensorData.Create<float>(matrix.Name, [cols, rows], y);
    }

    /// <summary>Writes the forward model with the trained weights (atomically).</summary>
    public void ExportModelForInferencing(string path, SaveOptions? options = null) => CurrentModel().Save(path, options);

    internal FlatBuffer Parameters => _params;
    internal FlatBuffer Moment1 => _state1;
    internal FlatBuffer Moment2 => _state2;

    internal void Restore(long step, double learningRate)
    {
        Step = step;
        LearningRate = learningRate;
        _resetPending = true;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _train.Dispose();
        _eval.Dispose();
        _optimizer.Dispose();
        _norm.Dispose();
        _owned.Dispose();
        _params.Dispose();
        _grads.Dispose();
        _state1.Dispose();
        _state2.Dispose();
        _reference?.Dispose();
        _ownedShared?.Dispose();
        _device?.Dispose();
    }
}
