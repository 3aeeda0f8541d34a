namespace SafeTune.Autodiff.Lora;

/// <summary>
/// One adapted projection <c>y = x · W</c>. The LoRA graph computes <c>y' = y + (Alpha / Rank) · (x · Aᵀ) · Bᵀ</c>, with
/// A [<see cref="Rank"/>, <see cref="In"/>] and B [<see cref="Out"/>, <see cref="Rank"/>].
/// </summary>
/// <param name="NodeName">The adapted MatMul node.</param>
/// <param name="WeightName">The frozen weight W (an initializer).</param>
/// <param name="AName">The initializer A, [rank, in].</param>
/// <param name="BName">The initializer B, [out, rank].</param>
/// <param name="In">The input width of the projection.</param>
/// <param name="Out">The output width of the projection.</param>
/// <param name="Transposed">
/// True when W is stored [out, in] and read through a Transpose (perm [1, 0]); false when the MatMul reads W [in, out] directly.
/// </param>
/// <param name="Rank">The rank r.</param>
/// <param name="Alpha">The scaling numerator; the update is scaled by <c>Alpha / Rank</c>.</param>
/// <param name="OutputName">
/// The name of the projection's output in the original graph. In the LoRA graph that name belongs to <c>y'</c> (the
/// adapted output every former reader of <c>y</c> now reads); the MatMul's own output is renamed.
/// </param>
public sealed record LoraAdapter(string NodeName, string WeightName, string AName, string BName, int In, int Out,
    bool Transposed, int Rank, double Alpha, string OutputName)
{
    /// <summary>The factor the update is multiplied by: <c>Alpha / Rank</c>.</summary>
    public double Scale => Alpha / Rank;
}

/// <summary>
/// A MatMul that LoRA could adapt: its second input is a 2-D float initializer W, read directly as [in, out] or through a
/// Transpose (perm [1, 0]) of W stored [out, in].
/// </summary>
/// <param name="NodeName">The MatMul node's name (its output's name when the node has none).</param>
/// <param name="WeightName">The weight's name.</param>
/// <param name="In">The input width.</param>
/// <param name="Out">The output width.</param>
/// <param name="Transposed">True for the Transpose form (W stored [out, in]).</param>
/// <param name="Shared">
/// True when W (or its transpose) is also read by other nodes, e.g. an LM head tied to the embedding table. Such a weight is
/// not adapted: merging the update into it would change the other readers too.
/// </param>
public sealed record LoraCandidate(string NodeName, string WeightName, int In, int Out, bool Transposed, bool Shared);
