using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using SafeTune.Onnx;

namespace SafeTune.Runtime.Training;

/// <summary>
/// One batch of token ids and labels, int64 [batch, sequence]. Labels are already shifted by the caller: the logits at
/// position t predict labels[t]; -100 marks a position that does not count. A sequence classifier (logits
/// [batch, 1, classes]) takes one label per row instead: <see cref="Labels"/> then holds <see cref="BatchSize"/> values,
/// fed as [batch, 1].
/// </summary>
public sealed record TokenBatch(long[] InputIds, long[] Labels, long[]? AttentionMask, int BatchSize, int SequenceLength)
{
    /// <summary>
    /// Segment ids (BERT's <c>token_type_ids</c>), int64 [batch, sequence]; null feeds zeros to a model that takes them.
    /// </summary>
    public long[]? TokenTypeIds { get; init; }

    /// <summary>Labels per row: <see cref="SequenceLength"/> (one per token), or 1 for a batch with one label per row.</summary>
    public int LabelColumns => Labels.Length == BatchSize && Labels.Length != InputIds.Length ? 1 : SequenceLength;

    /// <summary>Reads <c>{"input_ids": [[..]], "labels": [[..]], "attention_mask": [[..]]}</c> from a JSON file.</summary>
    public static TokenBatch Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: file not found.", path);
        SafePaths.RequireRegularInput(path);
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"must be a JSON object with \"input_ids\" and \"labels\", not {root.ValueKind.ToString().ToLowerInvariant()}.");
            if (!root.TryGetProperty("input_ids", out var ids)) throw new InvalidDataException("missing \"input_ids\".");
            if (!root.TryGetProperty("labels", out var labels)) throw new InvalidDataException("missing \"labels\".");
            var (idData, b, t) = Matrix(ids, "input_ids");
            var (labelData, lb, lt) = Matrix(labels, "labels");
            if (lb != b || lt != t) throw new InvalidDataException($"\"labels\" has shape [{lb}, {lt}] but \"input_ids\" has shape [{b}, {t}]; they must match.");
            long[]? mask = null;
            if (root.TryGetProperty("attention_mask", out var m))
            {
                var (maskData, mb, mt) = Matrix(m, "attention_mask");
                if (mb != b || mt != t) throw new InvalidDataException($"\"attention_mask\" has shape [{mb}, {mt}] but \"input_ids\" has shape [{b}, {t}]; they must match.");
                mask = maskData;
            }
            return new TokenBatch(idData, labelData, mask, b, t);
        }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON ({e.Message.Split('.')[0]})."); }
        catch (InvalidDataException e) when (!e.Message.StartsWith(path, StringComparison.Ordinal)) { throw new InvalidDataException($"{path}: {e.Message}"); }
    }

    private static (long[] data, int rows, int cols) Matrix(JsonElement e, string name)
    {
        if (e.ValueKind != JsonValueKind.Array || e.GetArrayLength() == 0) throw new InvalidDataException($"\"{name}\" must be a non-empty array of rows.");
        var rows = e.EnumerateArray().ToList();
        if (rows.Any(r => r.ValueKind != JsonValueKind.Array)) throw new InvalidDataException($"\"{name}\" must be an array of arrays (shape [batch, sequence]).");
        int cols = rows[0].GetArrayLength();
        if (cols == 0) throw new InvalidDataException($"\"{name}\" row 0 is empty; every row needs at least one token.");
        var data = new List<long>();
        for (int i = 0; i < rows.Count; i++)
        {
            if (rows[i].GetArrayLength() != cols) throw new InvalidDataException($"\"{name}\" row {i} has {rows[i].GetArrayLength()} entries, row 0 has {cols}.");
            int j = 0;
            foreach (var x in rows[i].EnumerateArray())
            {
                if (x.ValueKind != JsonValueKind.Number || !x.TryGetInt64(out var v)) throw new InvalidDataException($"\"{name}\"[{i}][{j}] is not an integer.");
                data.Add(v);
                j++;
            }
        }
        return ([.. data], rows.Count, cols);
    }

    /// <summary>
    /// A tensor for a model input that a token batch can provide (<c>input_ids</c>, <c>labels</c>, <c>attention_mask</c>,
    /// <c>token_type_ids</c>, <c>position_ids</c>), wrapping the batch's arrays without a copy where it can; null for
    /// other inputs. The caller owns the returned value.
    /// </summary>
    public OrtValue? InputFor(string input)
    {
        long[] shape = [BatchSize, SequenceLength];
        return input switch
        {
            "input_ids" => OrtValues.Wrap(InputIds, shape),
            Autodiff.Losses.LossNames.Labels => OrtValues.Wrap(Labels, [BatchSize, LabelColumns]),
            "attention_mask" => OrtValues.Wrap(AttentionMask ?? [.. Enumerable.Repeat(1L, InputIds.Length)], shape),
            "token_type_ids" => OrtValues.Wrap(TokenTypeIds ?? new long[InputIds.Length], shape),
            "position_ids" => OrtValues.Wrap([.. Enumerable.Range(0, InputIds.Length).Select(i => (long)(i % SequenceLength))], shape),
            _ => null,
        };
    }

    /// <summary>True for the model inputs <see cref="InputFor"/> provides.</summary>
    public static bool Provides(string input) =>
        input is "input_ids" or Autodiff.Losses.LossNames.Labels or "attention_mask" or "token_type_ids" or "position_ids";

    /// <summary>Checks ids and labels against a vocabulary size; the message names the tensor and the offending index.</summary>
    public void Validate(long vocabSize) => Validate(vocabSize, vocabSize);

    /// <summary>
    /// Checks the ids against the input vocabulary (<paramref name="inputVocabSize"/>, the embedding table's rows) and the
    /// labels against the output classes (<paramref name="labelClasses"/>, the logits' last dim); they differ for
    /// classifiers. The message names the tensor and the offending index.
    /// </summary>
    public void Validate(long inputVocabSize, long labelClasses)
    {
        for (int i = 0; i < InputIds.Length; i++)
            if (InputIds[i] < 0 || InputIds[i] >= inputVocabSize)
                throw new InvalidDataException($"input_ids[{i / SequenceLength}][{i % SequenceLength}] = {InputIds[i]} is outside the vocabulary (0..{inputVocabSize - 1}).");
        if (Labels.Length != InputIds.Length && Labels.Length != BatchSize)
            throw new InvalidDataException($"labels has {Labels.Length} entries; expected one per token ({InputIds.Length}) or one per row ({BatchSize}).");
        int columns = LabelColumns;
        for (int i = 0; i < Labels.Length; i++)
            if (Labels[i] != -100 && (Labels[i] < 0 || Labels[i] >= labelClasses))
                throw new InvalidDataException($"labels[{i / columns}][{i % columns}] = {Labels[i]} is outside the vocabulary (0..{labelClasses - 1}) and is not -100.");
        if (TokenTypeIds is { } types && types.Length != InputIds.Length)
            throw new InvalidDataException($"token_type_ids has {types.Length} entries but input_ids has {InputIds.Length}; they must match.");
    }
}
