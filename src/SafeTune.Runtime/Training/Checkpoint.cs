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
public static class Checkpoint
{
    /// <summary>The format tag written into state.json.</summary>
    public const string Format = "safetune-checkpoint/1";

    /// <summary>Saves the session's state into <paramref name="directory"/>, with optional caller data.</summary>
    public static void Save(TrainingSession session, string directory, JsonObject? extra = null)
    {
        Directory.CreateDirectory(directory);
        string stamp = session.Step.ToString("D6", System.Globalization.CultureInfo.InvariantCulture);
        string paramsFile = $"parameters-{stamp}.safetensors", optimFile = $"optimizer-{stamp}.safetensors";
        SafeTensors.Write(Path.Combine(directory, paramsFile), session.TrainableValues());
        bool adam = session.Options.Optimizer.Kind == OptimizerKind.AdamW;
        var moments = session.Layout.Entries.SelectMany(e => adam
            ? new[] { TensorData.Create<float>(e.Name + ".exp_avg", e.Dims, session.Moment1.Read(e.Name)), TensorData.Create<float>(e.Name + ".exp_avg_sq", e.Dims, session.Moment2.Read(e.Name)) }
            : [TensorData.Create<float>(e.Name + ".momentum_buffer", e.Dims, session.Moment1.Read(e.Name))]);
        SafeTensors.Write(Path.Combine(directory, optimFile), moments);
        var state = new JsonObject
        {
            ["format"] = Format,
            ["step"] = session.Step,
            ["learningRate"] = session.LearningRate,
            ["parameters"] = paramsFile,
            ["optimizer"] = optimFile,
            ["optimizerKind"] = session.Options.Optimizer.Kind.ToString(),
            ["trainable"] = new JsonArray([.. session.Trainable.Select(t => (JsonNode)t)]),
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

    /// <summary>Restores parameters, optimizer moments, step and learning rate; returns the caller data saved with it.</summary>
    public static JsonObject Load(TrainingSession session, string directory)
    {
        var statePath = Path.Combine(directory, "state.json");
        if (!File.Exists(statePath)) throw new InvalidDataException($"{directory}: no checkpoint (state.json is missing).");
        JsonObject state;
        try { state = JsonNode.Parse(File.ReadAllText(statePath))!.AsObject(); }
        catch (JsonException e) { throw new InvalidDataException($"{statePath}: not valid JSON ({e.Message.Split('.')[0]})."); }
        if ((string?)state["format"] != Format) throw new InvalidDataException($"{statePath}: not a {Format} checkpoint.");
        var trainable = state["trainable"]!.AsArray().Select(n => (string)n!).ToList();
        if (!trainable.SequenceEqual(session.Trainable))
            throw new InvalidDataException($"{statePath}: the checkpoint trains [{string.Join(", ", trainable.Take(4))}...] but this run trains [{string.Join(", ", session.Trainable.Take(4))}...].");
        if ((string?)state["optimizerKind"] != session.Options.Optimizer.Kind.ToString())
            throw new InvalidDataException($"{statePath}: the checkpoint was made with {(string?)state["optimizerKind"]}, this run uses {session.Options.Optimizer.Kind}.");
        var parameters = SafeTensors.Read(Path.Combine(directory, (string)state["parameters"]!)).Tensors.ToDictionary(t => t.Name);
        var moments = SafeTensors.Read(Path.Combine(directory, (string)state["optimizer"]!)).Tensors.ToDictionary(t => t.Name);
        bool adam = session.Options.Optimizer.Kind == OptimizerKind.AdamW;
        foreach (var e in session.Layout.Entries)
        {
            session.Parameters.Write(e.Name, Find(parameters, e.Name, statePath).AsSpan<float>());
            session.Moment1.Write(e.Name, Find(moments, e.Name + (adam ? ".exp_avg" : ".momentum_buffer"), statePath).AsSpan<float>());
            if (adam) session.Moment2.Write(e.Name, Find(moments, e.Name + ".exp_avg_sq", statePath).AsSpan<float>());
        }
        session.Restore((long)state["step"]!, (double)state["learningRate"]!);
        return state["extra"] as JsonObject ?? new JsonObject();
    }

    private static TensorData Find(Dictionary<string, TensorData> tensors, string name, string statePath) =>
        tensors.TryGetValue(name, out var t) ? t : throw new InvalidDataException($"{statePath}: the checkpoint has no tensor '{name}'.");
}
