using System.Text.Json;
using System.Text.Json.Nodes;
using SafeTune.Onnx;

namespace SafeTune.Runtime.Training;

/// <summary>
/// Checkpoints of a <see cref="TrainingSession"/>: the trainable parameters and the optimizer moments as safetensors,
/// and a JSON state. Every file is written atomically and <c>state.json</c> is written last and names the tensor
/// files of its step, so a process killed at any moment leaves the previous complete checkpoint; older tensor files
/// are removed only after the new state is in place.
/// <code>
/// DIR/state.json                    {"format": "safetune-checkpoint/1", "step": 5, "learningRate": 0.01,
///                                    "parameters": "parameters-000005.safetensors", "optimizer": "optimizer-000005.safetensors",
///                                    "trainable": [...], "optimizerKind": "AdamW", "extra": {...}}
/// DIR/parameters-000005.safetensors one F32 tensor per trainable parameter, under its own name
/// DIR/optimizer-000005.safetensors  NAME.exp_avg and NAME.exp_avg_sq (AdamW) or NAME.momentum_buffer (SGD)
/// </code>
/// </summary>
internal static class Checkpoint
{
    /// <summary>The format tag written into state.json.</summary>
    public const string Format = "safetune-checkpoint/1";

    /// <summary>Saves the session's state into <paramref name="directory"/>, with optional caller data.</summary>
    public static void Save(TrainingSession session, string directory, JsonObject? extra = null)
    {
        var kind = SafePaths.KindOf(directory);
        if (kind is not (FileKind.Missing or FileKind.Directory))
            throw new OutputFileException($"{directory}: is {SafePaths.Describe(kind)}; checkpoints go into a folder.");
        Directory.CreateDirectory(directory);
        string stamp = session.Step.ToString("D6", System.Globalization.CultureInfo.InvariantCulture);
        string paramsFile = $"parameters-{stamp}.safetensors", optimFile = $"optimizer-{stamp}.safetensors";
        var parameters = session.TrainableValues().ToList();
        SafeTensors.Write(Path.Combine(directory, paramsFile), parameters);
        bool adam = session.Options.Optimizer.Kind == OptimizerKind.AdamW;
        var moments = session.Layout.Entries.SelectMany(e => adam
            ? new[] { TensorData.Create<float>(e.Name + ".exp_avg", e.Dims, session.Moment1.Read(e.Name)), TensorData.Create<float>(e.Name + ".exp_avg_sq", e.Dims, session.Moment2.Read(e.Name)) }
            : [TensorData.Create<float>(e.Name + ".momentum_buffer", e.Dims, session.Moment1.Read(e.Name))]).ToList();
        SafeTensors.Write(Path.Combine(directory, optimFile), moments);
        var checksums = new JsonObject();
        foreach (var t in parameters.Concat(moments)) checksums[t.Name] = Checksum(t);
        var state = new JsonObject
        {
            ["format"] = Format,
            ["step"] = session.Step,
            ["learningRate"] = session.LearningRate,
            ["parameters"] = paramsFile,
            ["optimizer"] = optimFile,
            ["optimizerKind"] = session.Options.Optimizer.Kind.ToString(),
            ["trainable"] = new JsonArray([.. session.Trainable.Select(t => (JsonNode)t)]),
            ["checksums"] = checksums,
            ["extra"] = extra ?? new JsonObject(),
        };
        AtomicFile.WriteAllText(Path.Combine(directory, "state.json"), state.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        foreach (var old in Directory.EnumerateFiles(directory, "*.safetensors"))
        {
            var name = Path.GetFileName(old);
            if (name != paramsFile && name != optimFile && (name.StartsWith("parameters-", StringComparison.Ordinal) || name.StartsWith("optimizer-", StringComparison.Ordinal)))
                File.Delete(old);
        }
    }

    /// <summary>True when <paramref name="directory"/> holds a checkpoint.</summary>
    public static bool Exists(string directory) => File.Exists(Path.Combine(directory, "state.json"));

    /// <summary>
    /// Restores parameters, optimizer moments, step and learning rate; returns the caller data saved with it. The tensor
    /// files must lie inside <paramref name="directory"/>, every tensor must match its recorded SHA-256 and hold only
    /// finite values, and the step must lie in [0, <paramref name="maxStep"/>] when that is given.
    /// </summary>
    public static JsonObject Load(TrainingSession session, string directory, long? maxStep = null)
    {
        var statePath = Path.Combine(directory, "state.json");
        if (!File.Exists(statePath)) throw new InvalidDataException($"{directory}: no checkpoint (state.json is missing).");
        SafePaths.RequireRegularInput(statePath);
        JsonObject state;
        try { state = JsonNode.Parse(File.ReadAllText(statePath))?.AsObject() ?? throw new InvalidDataException($"{statePath}: not a JSON object."); }
        catch (Exception e) when (e is JsonException or InvalidOperationException) { throw new InvalidDataException($"{statePath}: not valid JSON ({e.Message.Split('.')[0]})."); }
        if (Text(state, "format", statePath) != Format) throw new InvalidDataException($"{statePath}: not a {Format} checkpoint.");
        if (state["trainable"] is not JsonArray trainableNode || trainableNode.Any(n => n is not JsonValue v || !v.TryGetValue<string>(out _)))
            throw new InvalidDataException($"{statePath}: \"trainable\" must be a list of parameter names.");
        var trainable = trainableNode.Select(n => (string)n!).ToList();
        if (!trainable.SequenceEqual(session.Trainable))
            throw new InvalidDataException($"{statePath}: the checkpoint trains [{string.Join(", ", trainable.Take(4))}...] but this run trains [{string.Join(", ", session.Trainable.Take(4))}...].");
        if (Text(state, "optimizerKind", statePath) != session.Options.Optimizer.Kind.ToString())
            throw new InvalidDataException($"{statePath}: the checkpoint was made with {(string?)state["optimizerKind"]}, this run uses {session.Options.Optimizer.Kind}.");
        long step = Number<long>(state, "step", statePath);
        if (step < 0 || (maxStep is { } max && step > max))
            throw new InvalidDataException($"{statePath}: \"step\" {step} lies outside this run's plan of {maxStep} steps.");
        double learningRate = Number<double>(state, "learningRate", statePath);
        if (!double.IsFinite(learningRate) || learningRate < 0)
            throw new InvalidDataException($"{statePath}: \"learningRate\" {learningRate} is not a finite non-negative number.");
        var checksums = state["checksums"] as JsonObject;
        var parameters = ReadTensors(directory, statePath, state, "parameters", checksums);
        var moments = ReadTensors(directory, statePath, state, "optimizer", checksums);
        bool adam = session.Options.Optimizer.Kind == OptimizerKind.AdamW;
        foreach (var e in session.Layout.Entries)
        {
            session.Parameters.Write(e.Name, Find(parameters, e.Name, statePath).AsSpan<float>());
            session.Moment1.Write(e.Name, Find(moments, e.Name + (adam ? ".exp_avg" : ".momentum_buffer"), statePath).AsSpan<float>());
            if (adam) session.Moment2.Write(e.Name, Find(moments, e.Name + ".exp_avg_sq", statePath).AsSpan<float>());
        }
        session.Restore(step, learningRate);
        return state["extra"] as JsonObject ?? new JsonObject();
    }

    /// <summary>The tensors of the file that state.json names under <paramref name="key"/>, checked one by one.</summary>
    private static Dictionary<string, TensorData> ReadTensors(string directory, string statePath, JsonObject state, string key, JsonObject? checksums)
    {
        var path = SafePaths.ResolveInside(directory, Text(state, key, statePath), $"{statePath}: \"{key}\"", "the checkpoint folder");
        var tensors = SafeTensors.Read(path).Tensors.ToDictionary(t => t.Name);
        foreach (var t in tensors.Values)
        {
            if (checksums is not null && (string?)checksums[t.Name] != Checksum(t))
                throw new InvalidDataException($"{path}: tensor '{t.Name}' does not match the checksum recorded in {statePath}; the checkpoint is damaged.");
            if (t.ElementType == ElementType.Float && !AllFinite(t.AsSpan<float>()))
                throw new InvalidDataException($"{path}: tensor '{t.Name}' holds NaN or infinite values; the checkpoint cannot be resumed.");
        }
        return tensors;
    }

    private static bool AllFinite(ReadOnlySpan<float> values)
    {
        foreach (var v in values) if (!float.IsFinite(v)) return false;
        return true;
    }

    /// <summary>The SHA-256 of a tensor's bytes, in lower-case hex.</summary>
    private static string Checksum(TensorData t) => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(t.Bytes));

    private static string Text(JsonObject state, string key, string statePath) =>
        state[key] is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw new InvalidDataException($"{statePath}: \"{key}\" must be a string.");

    private static T Number<T>(JsonObject state, string key, string statePath) =>
        state[key] is JsonValue v && v.TryGetValue<T>(out var n) ? n : throw new InvalidDataException($"{statePath}: \"{key}\" must be a number.");

    private static TensorData Find(Dictionary<string, TensorData> tensors, string name, string statePath) =>
        tensors.TryGetValue(name, out var t) ? t : throw new InvalidDataException($"{statePath}: the checkpoint has no tensor '{name}'.");
}
